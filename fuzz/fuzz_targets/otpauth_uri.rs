//! The otpauth:// parser on arbitrary text: no panics, and every URI it
//! accepts formats to a canonical URI that parses back to the same values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_otp::parse_otpauth_uri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = parse_otpauth_uri(text) else {
        return;
    };
    let canonical = params.to_uri();
    assert_eq!(parse_otpauth_uri(&canonical).as_ref(), Ok(&params), "{canonical}");
});
