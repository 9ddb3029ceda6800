//! Test support shared by the test suites of every totpd crate.
//!
//! A dev-dependency only: no production crate links it. It holds what more
//! than one crate's tests need, so each exists once: whether the suite runs
//! under CI, the loud skip, the PostgreSQL fixture ([`pg`]) and a fresh
//! database of either backend ([`db`]).
//!
//! The rule for skips: a test that cannot run on this machine (PostgreSQL
//! unreachable, no `initdb`) fails under CI, which must run everything, and
//! elsewhere calls [`note_skip`], which `scripts/test` lists and counts.

use std::io::Write as _;

pub mod db;
pub mod pg;

/// The environment variable naming the file where skips are recorded.
pub const SKIP_LOG_ENV: &str = "TOTPD_SKIP_LOG";

/// Whether `CI` is set to something other than empty, "false" or "0".
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Says loudly that `test` is skipped and why: on stderr, and as one line in
/// the file named by `TOTPD_SKIP_LOG` (set by `scripts/test`, which lists and
/// counts every skip at the end; libtest hides the stderr of a passing test,
/// so that list is what a reader sees).
pub fn note_skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
    let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    let line = format!("rust {test}: {why}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "could not record the skip in {}: {error}",
            std::path::Path::new(&path).display()
        );
    }
}

/// `Err(why)` skips `test`: a panic naming `test` and `why` under CI, else
/// [`note_skip`] and `None`. `Ok(value)` passes through.
pub fn or_skip<T>(test: &str, needed: Result<T, String>) -> Option<T> {
    match needed {
        Ok(value) => Some(value),
        Err(why) if in_ci() => {
            // A test-support crate: the panic is the test's failure.
            #[allow(clippy::panic)]
            {
                panic!("{test} {why}, and CI must run it")
            }
        }
        Err(why) => {
            note_skip(test, &why);
            None
        }
    }
}
