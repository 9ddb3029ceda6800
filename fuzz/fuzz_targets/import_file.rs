//! Every import reader on arbitrary bytes (QR images, URI lists, Google
//! migrations, the Aegis, 2FAS, andOTP, Bitwarden, 1Password, Ente and
//! Proton exports), under every format and auto detection: no panics, the
//! entry bound holds, and every imported entry survives a round-trip
//! through a canonical otpauth:// URI. Seeds: the plain fixtures of
//! totpd-import's tests (written by independent tools).

#![no_main]

use libfuzzer_sys::fuzz_target;
use totpd_import::{Entry, Format, Limits, read};
use totpd_otp::parse_otpauth_uri;

fuzz_target!(|data: &[u8]| {
    // Small bounds keep each input cheap: a key derivation or an image
    // beyond them is refused before any work.
    let limits = Limits {
        max_entries: 64,
        max_image_pixels: 1 << 16,
        max_archive_members: 16,
        max_archive_bytes: 1 << 20,
        max_kdf_iterations: 16,
        max_kdf_memory_kib: 64,
        max_kdf_passes: 2,
    };
    for format in Format::ALL {
        if let Ok(entries) = read(format, data, None, &limits) {
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
