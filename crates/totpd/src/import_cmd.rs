//! `totpd import FILE...`: enrollment from files against the same database
//! as `serve` (see `totpd import --help`).

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use totpd_import::{Entry, Password};
use totpd_vault::{
    AccountName, Clock as _, ImportEntry, ImportOptions, ImportOutcome, ImportReport, SystemClock,
};

use crate::cli::ImportArgs;
use crate::config::open_vault;

/// Largest file read, as for the HTTP import.
const MAX_FILE_BYTES: u64 = totpd_api::MAX_IMPORT_BODY_BYTES as u64;

pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let password = match &args.password_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let account = AccountName::parse(&args.account).map_err(anyhow::Error::new)?;
    let (vault, _) = open_vault(&args.store).await?;
    let principal = vault.operator(&account, SystemClock.now()).await?;
    let options = ImportOptions {
        dry_run: args.dry_run,
        atomic: args.atomic,
    };
    let mut progress = Progress::new(args.files.len());
    let mut summaries = Vec::with_capacity(args.files.len());
    for (done, path) in args.files.iter().enumerate() {
        progress.show(done, path);
        let outcome = match import_file(path, &args, password.as_ref()).await {
            Ok(entries) => vault
                .import_secrets(&principal, entries, options, SystemClock.now())
                .await
                .map_err(|e| e.to_string()),
            Err(message) => Err(message),
        };
        summaries.push((path.display().to_string(), outcome));
    }
    progress.finish();
    let failed = summaries
        .iter()
        .any(|(_, outcome)| outcome.as_ref().map_or(true, |r| !r.stored));
    if args.json {
        for (file, outcome) in &summaries {
            println!("{}", json_summary(file, outcome));
        }
    } else {
        print_table(&summaries, args.dry_run);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The first line of the password file, without its line break.
fn read_password(path: &Path) -> anyhow::Result<Password> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or_default();
    Ok(Password::new(line.to_owned()))
}

/// Reads and parses one file on the blocking pool: its entries, or why it
/// cannot be read (never secret material).
async fn import_file(
    path: &Path,
    args: &ImportArgs,
    password: Option<&Password>,
) -> Result<Vec<ImportEntry>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "it is {size} bytes, more than the {MAX_FILE_BYTES} an import reads"
        ));
    }
    let data = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let (format, password) = (args.format, password.cloned());
    let read = tokio::task::spawn_blocking(move || {
        totpd_import::read(
            format,
            &data,
            password.as_ref(),
            &totpd_import::Limits::default(),
        )
    })
    .await
    .map_err(|e| format!("reading it failed: {e}"))?;
    read.map(|entries| entries.into_iter().map(import_entry).collect())
        .map_err(|e| e.to_string())
}

fn import_entry(entry: Entry) -> ImportEntry {
    match entry {
        Entry::Otp(params) => ImportEntry::from_params(params),
        Entry::Invalid(invalid) => ImportEntry::Invalid {
            label: invalid.label,
            issuer: invalid.issuer,
            reason: invalid.reason,
        },
    }
}

/// A bar of files done on standard error, drawn only on a terminal.
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    const WIDTH: usize = 24;

    fn new(total: usize) -> Progress {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize, current: &Path) {
        if !self.terminal {
            return;
        }
        let filled = Self::WIDTH * done / self.total.max(1);
        let name = current.file_name().map_or_else(
            || current.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[2K[{}{}] {done}/{} {name}",
            "#".repeat(filled),
            "-".repeat(Self::WIDTH - filled),
            self.total
        );
        let _ = stderr.flush();
    }

    fn finish(&mut self) {
        if self.terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

type Summary = (String, Result<ImportReport, String>);

fn print_table(summaries: &[Summary], dry_run: bool) {
    let width = summaries
        .iter()
        .map(|(file, _)| file.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:>7}  {:>10}  {:>7}  note",
        "file", "created", "duplicates", "invalid"
    );
    for (file, outcome) in summaries {
        match outcome {
            Ok(report) => println!(
                "{file:<width$}  {:>7}  {:>10}  {:>7}  {}",
                report.count(ImportOutcome::Created),
                report.count(ImportOutcome::Duplicate),
                report.count(ImportOutcome::Invalid),
                match (report.stored, dry_run) {
                    (false, _) => "nothing stored (atomic: an entry is invalid)",
                    (true, true) => "dry run: nothing stored",
                    (true, false) => "",
                }
            ),
            Err(message) => println!(
                "{file:<width$}  {:>7}  {:>10}  {:>7}  error: {message}",
                "-", "-", "-"
            ),
        }
    }
    for (file, outcome) in summaries {
        let Ok(report) = outcome else { continue };
        for (index, result) in report.results.iter().enumerate() {
            if result.outcome == ImportOutcome::Invalid {
                println!(
                    "{file}: entry {index} ({}) is invalid: {}",
                    entry_name(result.label.as_deref(), result.issuer.as_deref()),
                    result.message.as_deref().unwrap_or_default()
                );
            }
        }
    }
}

fn entry_name(label: Option<&str>, issuer: Option<&str>) -> String {
    match (issuer, label) {
        (Some(issuer), Some(label)) => format!("{issuer}: {label}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => "no name".to_owned(),
    }
}

fn json_summary(file: &str, outcome: &Result<ImportReport, String>) -> serde_json::Value {
    match outcome {
        Err(message) => serde_json::json!({"file": file, "error": message}),
        Ok(report) => serde_json::json!({
            "file": file,
            "dry_run": report.dry_run,
            "stored": report.stored,
            "created": report.count(ImportOutcome::Created),
            "duplicates": report.count(ImportOutcome::Duplicate),
            "invalid": report.count(ImportOutcome::Invalid),
            "results": report.results.iter().enumerate().map(|(index, r)| serde_json::json!({
                "index": index,
                "outcome": r.outcome.as_str(),
                "id": r.id.map(|id| id.to_string()),
                "label": r.label,
                "issuer": r.issuer,
                "message": r.message,
            })).collect::<Vec<_>>(),
        }),
    }
}
