//! The base32 decoder on arbitrary text: no panics, and whatever it accepts
//! re-encodes to canonical base32 that decodes to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_otp::{Secret, base32};

fuzz_target!(|data: &[u8]| {
    // Raw bytes always round-trip through the encoder.
    assert_eq!(base32::decode(&base32::encode(data)).as_deref(), Ok(data));

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = base32::decode(text) {
        let canonical = base32::encode(&bytes);
        assert_eq!(base32::decode(&canonical), Ok(bytes));
    }
    if let Ok(secret) = Secret::from_base32(text) {
        assert_eq!(Secret::from_base32(&secret.to_base32()), Ok(secret));
    }
});
