//! The Google Authenticator export decoder on arbitrary input, both as
//! protobuf bytes and as URI text: no panics, and every entry it accepts
//! survives a round-trip through a canonical otpauth:// URI.

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_otp::{OtpParams, google_export, parse_otpauth_uri};

fn check_entries(entries: &[Result<OtpParams, totpd_otp::EntryError>]) {
    for params in entries.iter().flatten() {
        let uri = params.to_uri();
        assert_eq!(parse_otpauth_uri(&uri).as_ref(), Ok(params), "{uri}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = google_export::decode_payload(data) {
        check_entries(&batch.entries);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(entries) = google_export::decode(text) {
            check_entries(&entries);
        }
    }
});
