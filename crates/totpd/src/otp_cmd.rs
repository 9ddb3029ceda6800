//! `totpd otp`: compute codes offline, like `oathtool`.
//!
//! This is the one place in the OTP path that reads the clock (for `--at`'s
//! default); everything else takes the time as a parameter.

use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Args;
use totpd_otp::{Algorithm, Digits, Generator, OtpKind, Period, Secret, parse_otpauth_uri};
use zeroize::Zeroizing;

/// Compute TOTP/HOTP codes offline from a secret or an otpauth URI, like oathtool.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  totpd otp --secret JBSWY3DPEHPK3PXP
  totpd otp --secret - --digits 8 --period 60 < secret.txt
  totpd otp --uri 'otpauth://totp/Acme:bob?secret=JBSWY3DPEHPK3PXP&issuer=Acme'
  totpd otp --secret JBSWY3DPEHPK3PXP --at 1700000000 --window 3")]
pub struct OtpArgs {
    /// Base32 secret (any case; spaces, hyphens and padding optional).
    /// Use "-" to read it from standard input, which keeps it out of the
    /// process list and shell history.
    #[arg(
        long,
        value_name = "B32",
        required_unless_present = "uri",
        conflicts_with = "uri"
    )]
    pub secret: Option<String>,

    /// otpauth://totp/... or otpauth://hotp/... URI (the text of an
    /// enrollment QR code); its algorithm, digits, period and, for HOTP,
    /// counter are used. Use "-" to read it from standard input.
    #[arg(long, value_name = "URI", conflicts_with_all = ["algorithm", "digits", "period", "counter"])]
    pub uri: Option<String>,

    /// HMAC hash function: SHA1, SHA256 or SHA512 (any case).
    #[arg(long, value_name = "ALG", default_value = "SHA1", value_parser = parse_algorithm)]
    pub algorithm: Algorithm,

    /// Number of digits in each code: 6, 7 or 8.
    #[arg(long, value_name = "N", default_value = "6", value_parser = parse_digits)]
    pub digits: Digits,

    /// TOTP time step in seconds, 1 to 86400.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_period)]
    pub period: Period,

    /// Unix time (seconds) to compute the TOTP code for. Default: now.
    #[arg(long, value_name = "UNIX")]
    pub at: Option<u64>,

    /// Compute HOTP codes from this counter instead of TOTP codes from the
    /// time (with --secret; an HOTP --uri carries its own counter).
    #[arg(long, value_name = "N", conflicts_with_all = ["at", "period"])]
    pub counter: Option<u64>,

    /// Print N consecutive codes, one per line, starting with the code for
    /// --at's period (or --counter).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub window: u64,
}

/// Runs `totpd otp`.
pub fn run(args: OtpArgs) -> anyhow::Result<ExitCode> {
    let OtpArgs {
        secret,
        uri,
        algorithm,
        digits,
        period,
        at,
        counter,
        window,
    } = args;
    // Whatever the secret arrived in is wiped when this function returns.
    let secret = secret.map(Zeroizing::new);
    let uri = uri.map(Zeroizing::new);

    let (generator, first_counter) = match (&secret, &uri) {
        (Some(secret), _) => {
            let secret = read_secret(secret)?;
            let first = match counter {
                Some(counter) => counter,
                None => at_or_now(at)? / u64::from(period.get()),
            };
            (Generator::new(&secret, algorithm, digits), first)
        }
        (None, Some(uri)) => {
            let text = read_stdin_if_dash(uri, "the URI")?;
            let params = parse_otpauth_uri(&text).context("invalid --uri")?;
            let first = match params.kind {
                OtpKind::Totp { period } => at_or_now(at)? / u64::from(period.get()),
                OtpKind::Hotp { counter } => {
                    if at.is_some() {
                        bail!("--at does not apply to an HOTP URI, which carries its counter");
                    }
                    counter
                }
            };
            (
                Generator::new(&params.secret, params.algorithm, params.digits),
                first,
            )
        }
        (None, None) => bail!("give --secret or --uri"),
    };

    if first_counter.checked_add(window - 1).is_none() {
        bail!("--window {window} runs past the last counter (2^64 - 1)");
    }
    print_codes(&generator, first_counter, window)
}

/// Decodes `--secret`, reading it from stdin when it is "-".
fn read_secret(arg: &str) -> anyhow::Result<Secret> {
    let text = read_stdin_if_dash(arg, "the secret")?;
    // The error names the bad character and its position, never the secret.
    Secret::from_base32(&text).context("invalid --secret")
}

/// The argument itself, or standard input (trimmed) when it is "-".
fn read_stdin_if_dash(arg: &str, what: &str) -> anyhow::Result<Zeroizing<String>> {
    if arg != "-" {
        return Ok(Zeroizing::new(arg.to_owned()));
    }
    // Far more than any secret or URI; stops an accidental `< /dev/zero`.
    const LIMIT: u64 = 64 * 1024;
    let mut input = Zeroizing::new(String::with_capacity(1024));
    io::stdin()
        .lock()
        .take(LIMIT + 1)
        .read_to_string(&mut input)
        .with_context(|| format!("could not read {what} from standard input"))?;
    if input.len() as u64 > LIMIT {
        bail!("{what} on standard input is longer than {LIMIT} bytes");
    }
    let trimmed = input.trim();
    if trimmed.is_empty() {
        bail!("standard input is empty; expected {what}");
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

fn at_or_now(at: Option<u64>) -> anyhow::Result<u64> {
    match at {
        Some(at) => Ok(at),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs()),
    }
}

/// Writes `count` codes from `first`, one per line, through one locked,
/// buffered stdout and without allocating per code. A closed pipe (`| head`)
/// ends the output quietly.
fn print_codes(generator: &Generator, first: u64, count: u64) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut digits = [0u8; Digits::MAX as usize];
    let result = (first..=first + (count - 1)).try_for_each(|counter| {
        out.write_all(generator.code(counter).write_ascii(&mut digits))?;
        out.write_all(b"\n")
    });
    match result.and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error).context("could not write to standard output"),
    }
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: totpd_otp::ParamError| e.to_string())
}

fn parse_digits(s: &str) -> Result<Digits, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    Digits::try_from(n).map_err(|e| e.to_string())
}

fn parse_period(s: &str) -> Result<Period, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of seconds"))?;
    Period::new(n).map_err(|e| e.to_string())
}
