//! The import reader on arbitrary bytes, under every format: no panics, the
//! entry bound holds, and every imported entry survives a round-trip
//! through a canonical otpauth:// URI.

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_import::{Entry, Format, Limits, read};
use totpd_otp::parse_otpauth_uri;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_entries: 64 };
    for format in Format::ALL {
        if let Ok(entries) = read(format, data, &limits) {
            assert!(!entries.is_empty() && entries.len() <= limits.max_entries);
            for entry in &entries {
                if let Entry::Otp(params) = entry {
                    let uri = params.to_uri();
                    assert_eq!(parse_otpauth_uri(&uri).as_ref(), Ok(params), "{uri}");
                }
            }
        }
    }
});
