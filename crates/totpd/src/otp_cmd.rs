//! `totpd otp`: compute codes offline, like `oathtool`.
//!
//! This is the one place in the OTP path that reads the clock (for `--at`'s
//! default); everything else takes the time as a parameter.

use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;
use totpd_vault::{Clock as _, SystemClock, UnixTime};

use anyhow::{Context as _, bail};
use clap::Args;
use totpd_otp::{Algorithm, Digits, Generator, OtpKind, Period, Secret, parse_otpauth_uri};
use zeroize::Zeroizing;

/// Compute TOTP/HOTP codes offline from a secret or an otpauth URI, like oathtool.
///
/// `Debug` shows whether a secret or URI was given, never its text.
#[derive(Args)]
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

impl std::fmt::Debug for OtpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |given: &Option<String>| given.as_ref().map(|_| Redacted);
        f.debug_struct("OtpArgs")
            .field("secret", &redacted(&self.secret))
            .field("uri", &redacted(&self.uri))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("at", &self.at)
            .field("counter", &self.counter)
            .field("window", &self.window)
            .finish()
    }
}

/// Stands for a value `Debug` must not show.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Runs `totpd otp`.
pub fn run(args: OtpArgs) -> anyhow::Result<ExitCode> {
    let codes = plan(args, &mut io::stdin().lock(), system_now)?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    match write_codes(&mut out, &codes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `totpd otp --window 1000 | head -1` is not an error.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error).context("could not write to standard output"),
    }
}

/// What to print: a keyed generator and the counters to print codes for.
struct Codes {
    generator: Generator,
    first: u64,
    count: u64,
}

/// Turns the arguments into the codes to print, reading a "-" argument
/// from `stdin` and the time (only when --at is absent) from `now`.
fn plan(
    args: OtpArgs,
    stdin: &mut dyn Read,
    now: impl FnOnce() -> anyhow::Result<u64>,
) -> anyhow::Result<Codes> {
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
    let unix_time = |at: Option<u64>| at.map_or_else(now, Ok);

    let (generator, first) = match (&secret, &uri) {
        (Some(secret), _) => {
            let text = read_if_dash(secret, stdin, "the secret")?;
            // The error names the bad character and its position, never the secret.
            let secret = Secret::from_base32(&text).context("invalid --secret")?;
            let first = match counter {
                Some(counter) => counter,
                None => unix_time(at)? / u64::from(period.get()),
            };
            (Generator::new(&secret, algorithm, digits), first)
        }
        (None, Some(uri)) => {
            let text = read_if_dash(uri, stdin, "the URI")?;
            let params = parse_otpauth_uri(&text).context("invalid --uri")?;
            let first = match params.kind {
                OtpKind::Totp { period } => unix_time(at)? / u64::from(period.get()),
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

    if first.checked_add(window - 1).is_none() {
        bail!("--window {window} runs past the last counter (2^64 - 1)");
    }
    Ok(Codes {
        generator,
        first,
        count: window,
    })
}

/// The argument itself, or `stdin` (trimmed) when it is "-".
fn read_if_dash(arg: &str, stdin: &mut dyn Read, what: &str) -> anyhow::Result<Zeroizing<String>> {
    if arg != "-" {
        return Ok(Zeroizing::new(arg.to_owned()));
    }
    // Far more than any secret or URI; stops an accidental `< /dev/zero`.
    const LIMIT: u64 = 64 * 1024;
    let mut input = Zeroizing::new(String::with_capacity(1024));
    stdin
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

/// The clock, read only when --at is absent.
fn system_now() -> anyhow::Result<u64> {
    let UnixTime(millis) = SystemClock.now();
    u64::try_from(millis / 1000).context("the system clock is before 1970")
}

/// Writes the codes one per line, formatting each into a stack buffer (no
/// allocation per code); `out` should be buffered.
fn write_codes(out: &mut impl Write, codes: &Codes) -> io::Result<()> {
    let mut digits = [0u8; Digits::MAX as usize];
    let last = codes.first + (codes.count - 1);
    (codes.first..=last).try_for_each(|counter| {
        out.write_all(codes.generator.code(counter).write_ascii(&mut digits))?;
        out.write_all(b"\n")
    })
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: totpd_otp::ParamError| e.to_string())
}

// The messages below never repeat the value: it could be a secret typed
// into the wrong flag.
fn parse_digits(s: &str) -> Result<Digits, String> {
    let n: u64 = s.parse().map_err(|_| "not a whole number".to_owned())?;
    Digits::try_from(n).map_err(|e| e.to_string())
}

fn parse_period(s: &str) -> Result<Period, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| "not a whole number of seconds".to_owned())?;
    Period::new(n).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        otp: OtpArgs,
    }

    /// RFC 6238's SHA-1 seed, "12345678901234567890", in base32.
    const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn args(argv: &[&str]) -> OtpArgs {
        Cli::try_parse_from(std::iter::once("otp").chain(argv.iter().copied()))
            .unwrap()
            .otp
    }

    fn output(argv: &[&str], stdin: &str, now: u64) -> anyhow::Result<String> {
        let codes = plan(args(argv), &mut stdin.as_bytes(), || Ok(now))?;
        let mut out = Vec::new();
        write_codes(&mut out, &codes)?;
        Ok(String::from_utf8(out)?)
    }

    fn no_clock() -> anyhow::Result<u64> {
        panic!("the clock must not be read when --at or a counter is given")
    }

    #[test]
    fn a_secret_and_a_time_give_the_rfc_6238_code() {
        let out = output(&["--secret", SEED, "--digits", "8", "--at", "59"], "", 0).unwrap();
        assert_eq!(out, "94287082\n");
    }

    #[test]
    fn without_at_the_clock_gives_the_time() {
        let out = output(&["--secret", SEED, "--digits", "8"], "", 1_111_111_109).unwrap();
        assert_eq!(out, "07081804\n");
    }

    #[test]
    fn the_clock_is_not_read_when_at_is_given() {
        let codes = plan(
            args(&["--secret", SEED, "--at", "59"]),
            &mut io::empty(),
            no_clock,
        );
        assert_eq!(codes.unwrap().first, 1);
    }

    #[test]
    fn a_window_prints_consecutive_codes_from_the_current_period() {
        let argv = [
            "--secret", SEED, "--digits", "8", "--at", "59", "--window", "3",
        ];
        let out = output(&argv, "", 0).unwrap();
        assert_eq!(out, "94287082\n37359152\n26969429\n");
    }

    #[test]
    fn a_secret_can_come_from_stdin_with_surrounding_whitespace() {
        let argv = ["--secret", "-", "--digits", "8", "--at", "59"];
        let out = output(&argv, " gezd gnbv gy3t qojq gezd gnbv gy3t qojq \n", 0).unwrap();
        assert_eq!(out, "94287082\n");
    }

    #[test]
    fn empty_stdin_is_an_error() {
        let error = output(&["--secret", "-", "--at", "0"], " \n", 0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "standard input is empty; expected the secret"
        );
    }

    #[test]
    fn a_counter_gives_hotp_codes() {
        let codes = plan(
            args(&["--secret", SEED, "--counter", "0", "--window", "3"]),
            &mut io::empty(),
            no_clock,
        )
        .unwrap();
        let mut out = Vec::new();
        write_codes(&mut out, &codes).unwrap();
        assert_eq!(out, b"755224\n287082\n359152\n");
    }

    #[test]
    fn an_hotp_uri_uses_its_counter_and_parameters() {
        let uri = format!("otpauth://hotp/Acme:bob?secret={SEED}&counter=9&digits=6");
        let codes = plan(args(&["--uri", &uri]), &mut io::empty(), no_clock).unwrap();
        assert_eq!((codes.first, codes.count), (9, 1));
        let mut out = Vec::new();
        write_codes(&mut out, &codes).unwrap();
        assert_eq!(out, b"520489\n");
    }

    #[test]
    fn a_totp_uri_uses_its_own_algorithm_digits_and_period() {
        // RFC 6238 Appendix B, SHA-256 row at 1234567890, from a URI on stdin.
        let seed32 = totpd_otp::base32::encode(b"12345678901234567890123456789012");
        let uri = format!("otpauth://totp/x?secret={seed32}&algorithm=SHA256&digits=8&period=30");
        let out = output(&["--uri", "-", "--at", "1234567890"], &uri, 0).unwrap();
        assert_eq!(out, "91819424\n");
    }

    #[test]
    fn at_with_an_hotp_uri_is_an_error() {
        let uri = format!("otpauth://hotp/x?secret={SEED}&counter=1");
        let error = output(&["--uri", &uri, "--at", "0"], "", 0).unwrap_err();
        assert!(error.to_string().contains("--at does not apply"), "{error}");
    }

    #[test]
    fn a_bad_secret_is_reported_without_the_secret() {
        let secret = "JBSWY3DPEHPK3PX1";
        let error = output(&["--secret", secret, "--at", "0"], "", 0).unwrap_err();
        let message = format!("{error:#}");
        assert_eq!(
            message,
            "invalid --secret: invalid base32 character '1' at position 16"
        );
        let error = output(&["--secret", "-", "--at", "0"], secret, 0).unwrap_err();
        assert!(!format!("{error:#}").contains("JBSW"), "{error:#}");
    }

    #[test]
    fn a_bad_uri_names_the_bad_part() {
        let uri = "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=9";
        let error = output(&["--uri", uri], "", 0).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "invalid --uri: parameter \"digits\" is invalid: digits must be 6, 7 or 8, not 9"
        );
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_the_uri() {
        let uri = format!("otpauth://totp/Acme:bob?secret={SEED}&issuer=Acme");
        for argv in [vec!["--secret", SEED], vec!["--uri", uri.as_str()]] {
            let parsed = args(&argv);
            for debug in [format!("{parsed:?}"), format!("{parsed:#?}")] {
                assert!(
                    debug.contains("[redacted]"),
                    "{argv:?}: no [redacted] marker"
                );
                assert!(
                    !debug.to_uppercase().contains(&SEED[..16]),
                    "{argv:?}: Debug shows the secret"
                );
                assert!(!debug.contains("otpauth"), "{argv:?}: Debug shows the URI");
            }
        }
    }

    #[test]
    fn a_window_past_the_last_counter_is_an_error() {
        let argv = [
            "--secret",
            SEED,
            "--counter",
            "18446744073709551615",
            "--window",
            "2",
        ];
        assert!(output(&argv, "", 0).is_err());
        let argv = [
            "--secret",
            SEED,
            "--counter",
            "18446744073709551615",
            "--window",
            "1",
        ];
        assert_eq!(output(&argv, "", 0).unwrap().len(), 7);
    }

    #[test]
    fn flags_are_validated_by_the_parser() {
        for argv in [
            &["--secret", SEED, "--digits", "9"][..],
            &["--secret", SEED, "--period", "0"],
            &["--secret", SEED, "--algorithm", "MD5"],
            &["--secret", SEED, "--window", "0"],
            &["--secret", SEED, "--uri", "otpauth://totp/x?secret=A"],
            &["--uri", "otpauth://totp/x?secret=AA", "--digits", "8"],
            &["--secret", SEED, "--counter", "1", "--at", "0"],
            &[],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("otp").chain(argv.iter().copied())).is_err(),
                "{argv:?}"
            );
        }
        let parsed = args(&["--secret", SEED, "--algorithm", "sha-512"]);
        assert_eq!(parsed.algorithm, Algorithm::Sha512);
        assert_eq!(
            (parsed.digits.get(), parsed.period.get(), parsed.window),
            (6, 30, 1)
        );
    }
}
