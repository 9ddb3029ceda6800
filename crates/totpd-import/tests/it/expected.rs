//! Compares what `read` gives with a fixture's `.expected.json`, written by
//! the fixture's own script (`tests/data/<format>/make_<format>.py`) with
//! codes computed by Python's `hmac` module: an implementation independent
//! of `totpd-otp`.
//!
//! The expected file is a JSON array (or an object with an `entries`
//! array), one item per entry in file order: either
//! `{"label", "issuer", "type": "totp"|"hotp", "algorithm", "digits",
//! "period" | "counter", "codes": {...}}`, where each key of `codes` is a
//! unix time (TOTP) or a counter (HOTP), or `{"invalid": true, "label",
//! "issuer"}`.

use std::time::{Duration, Instant};

use serde_json::Value;
use totpd_import::{Entry, Format, ImportError, Limits, Password, read};
use totpd_otp::{Algorithm, OtpKind, Totp, hotp};

/// Panics with the entry's index and field when `entries` differ from
/// `expected_json` in count, order, names, parameters or codes.
pub fn check(entries: &[Entry], expected_json: &str) {
    let expected: Value = serde_json::from_str(expected_json).expect("expected JSON parses");
    let expected = match &expected {
        Value::Array(items) => items.clone(),
        Value::Object(object) => object["entries"].as_array().expect("entries array").clone(),
        other => panic!("expected JSON is neither an array nor an object: {other}"),
    };
    assert_eq!(
        entries.len(),
        expected.len(),
        "number of entries: got {:?}",
        entries.iter().map(describe).collect::<Vec<_>>()
    );
    for (index, (entry, want)) in entries.iter().zip(&expected).enumerate() {
        let want_label = want["label"].as_str().map(str::to_owned);
        let want_issuer = want["issuer"].as_str().map(str::to_owned);
        if want["invalid"].as_bool() == Some(true) {
            let Entry::Invalid(invalid) = entry else {
                panic!("entry {index} ({want_label:?}) should be invalid, is {entry:?}");
            };
            assert_eq!(invalid.label, want_label, "entry {index}: label");
            assert_eq!(invalid.issuer, want_issuer, "entry {index}: issuer");
            assert!(!invalid.reason.is_empty(), "entry {index}: reason");
            continue;
        }
        let Entry::Otp(params) = entry else {
            panic!("entry {index} ({want_label:?}) should be valid, is {entry:?}");
        };
        assert_eq!(
            Some(params.account.clone()),
            want_label,
            "entry {index}: label"
        );
        assert_eq!(params.issuer, want_issuer, "entry {index}: issuer");
        let algorithm: Algorithm = want["algorithm"].as_str().unwrap().parse().unwrap();
        assert_eq!(params.algorithm, algorithm, "entry {index}: algorithm");
        assert_eq!(
            u64::from(params.digits.get()),
            want["digits"].as_u64().unwrap(),
            "entry {index}: digits"
        );
        let codes = want["codes"].as_object().expect("codes object");
        assert!(!codes.is_empty(), "entry {index}: no codes to compare");
        match (want["type"].as_str().unwrap(), &params.kind) {
            ("totp", OtpKind::Totp { period }) => {
                assert_eq!(
                    u64::from(period.get()),
                    want["period"].as_u64().unwrap(),
                    "entry {index}: period"
                );
                let totp = Totp {
                    secret: params.secret.clone(),
                    algorithm: params.algorithm,
                    digits: params.digits,
                    period: *period,
                };
                for (time, code) in codes {
                    let time: u64 = time.parse().unwrap();
                    assert_eq!(
                        totp.code_at(time).to_string(),
                        code.as_str().unwrap(),
                        "entry {index}: code at {time}"
                    );
                }
            }
            ("hotp", OtpKind::Hotp { counter }) => {
                assert_eq!(
                    *counter,
                    want["counter"].as_u64().unwrap(),
                    "entry {index}: counter"
                );
                for (at, code) in codes {
                    let at: u64 = at.parse().unwrap();
                    assert_eq!(
                        hotp(&params.secret, params.algorithm, params.digits, at).to_string(),
                        code.as_str().unwrap(),
                        "entry {index}: code for counter {at}"
                    );
                }
            }
            (kind, got) => panic!("entry {index}: expected {kind}, got {got:?}"),
        }
    }
}

/// An entry for a failure message, without its secret.
pub fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Otp(params) => format!(
            "otp({:?}, {:?}, {:?})",
            params.account, params.issuer, params.kind
        ),
        Entry::Invalid(invalid) => format!(
            "invalid({:?}, {:?}: {})",
            invalid.label, invalid.issuer, invalid.reason
        ),
    }
}

/// One fixture file of a format: its bytes, its password when it is
/// encrypted, and its `.expected.json`.
pub struct Fixture {
    pub format: Format,
    pub data: &'static [u8],
    pub password: Option<&'static str>,
    pub expected: &'static str,
}

impl Fixture {
    /// Read under its format and under `auto`: every entry as expected.
    pub fn check_reads(&self) {
        for format in [self.format, Format::Auto] {
            let password = self.password.map(password);
            let entries = read(format, self.data, password.as_ref(), &Limits::default())
                .unwrap_or_else(|e| panic!("{format}: {e}"));
            check(&entries, self.expected);
        }
    }

    /// [`Limits::max_entries`] at the fixture's own count of entries reads
    /// them all; one fewer refuses the file as too many, naming the bound.
    pub fn check_entry_bound(&self) {
        let password = self.password.map(password);
        let read_with = |max_entries: usize| {
            let limits = Limits {
                max_entries,
                ..Limits::default()
            };
            read(self.format, self.data, password.as_ref(), &limits)
        };
        let count = read_with(Limits::default().max_entries)
            .expect("the fixture reads")
            .len();
        assert!(count > 1, "{} holds a single entry", self.format);
        assert_eq!(read_with(count).expect("all entries fit").len(), count);
        assert_eq!(
            read_with(count - 1).unwrap_err(),
            ImportError::TooManyEntries { max: count - 1 }
        );
    }

    /// An encrypted fixture, under its format and `auto`: without a
    /// password it asks for one, with a wrong one it says so.
    pub fn check_password_refusals(&self) {
        let wrong = password("not the password");
        for format in [self.format, Format::Auto] {
            for (given, want) in [
                (
                    None,
                    ImportError::PasswordRequired {
                        format: self.format,
                    },
                ),
                (
                    Some(&wrong),
                    ImportError::WrongPassword {
                        format: self.format,
                    },
                ),
            ] {
                let error = read(format, self.data, given, &Limits::default()).unwrap_err();
                assert_eq!(error, want, "{format}");
            }
        }
    }
}

/// `text` as an export password.
pub fn password(text: &str) -> Password {
    Password::new(text.to_owned())
}

/// Fails when `text` holds any of `secrets` or `password`.
pub fn assert_no_secret(text: &str, secrets: &[&str], password: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!text.contains(password), "{text}");
}

/// Runs `f` and checks it took under a second: a refused key derivation
/// must be refused before it starts, not after.
// The workspace keeps clock reads behind totpd's Clock; a test timing a
// refusal has to read the real one.
#[allow(clippy::disallowed_methods)]
pub fn quickly<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    out
}

/// Every text a read gives a person: the reasons of its invalid entries,
/// or its error as displayed and debugged.
pub fn messages(outcome: &Result<Vec<Entry>, ImportError>) -> Vec<String> {
    match outcome {
        Ok(entries) => entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Invalid(invalid) => Some(invalid.reason.clone()),
                Entry::Otp(_) => None,
            })
            .collect(),
        Err(error) => vec![format!("{error} {error:?}")],
    }
}
