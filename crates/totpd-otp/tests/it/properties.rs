//! Properties over generated input: round-trips and no panics.

use proptest::prelude::*;
use totpd_otp::{
    Algorithm, Digits, Generator, OtpKind, OtpParams, Period, Secret, Totp, base32, google_export,
    parse_otpauth_uri,
};

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

fn digits() -> impl Strategy<Value = Digits> {
    (Digits::MIN..=Digits::MAX).prop_map(|n| Digits::new(n).unwrap())
}

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), Secret::MIN_LEN..=Secret::MAX_LEN)
        .prop_map(|bytes| Secret::from_bytes(bytes).unwrap())
}

fn kind() -> impl Strategy<Value = OtpKind> {
    prop_oneof![
        (1..=u64::from(Period::MAX)).prop_map(|s| OtpKind::Totp {
            period: Period::new(s).unwrap()
        }),
        any::<u64>().prop_map(|counter| OtpKind::Hotp { counter }),
    ]
}

/// Text that stresses the URI format: its delimiters, percent signs,
/// spaces, plus signs and non-ASCII, mixed with arbitrary characters.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                ":", "%", "%3A", "?", "&", "=", "+", " ", "/", "#", "@", "é", "✓", "\0"
            ])
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
            "[a-zA-Z0-9]{1,8}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Every `OtpParams` the parser can produce: the issuer is never empty, and
/// an account with a colon never starts with a space (the parser drops
/// spaces after the label's colon).
fn params() -> impl Strategy<Value = OtpParams> {
    (
        kind(),
        secret(),
        algorithm(),
        digits(),
        prop::option::of(text()),
        text(),
    )
        .prop_map(|(kind, secret, algorithm, digits, issuer, account)| {
            let account = if account.contains(':') {
                account.trim_start_matches(' ').to_owned()
            } else {
                account
            };
            OtpParams {
                kind,
                secret,
                algorithm,
                digits,
                issuer: issuer.filter(|i| !i.is_empty()),
                account,
            }
        })
}

proptest! {
    #[test]
    fn base32_decoding_inverts_encoding(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(base32::decode(&base32::encode(&bytes)), Ok(bytes));
    }

    #[test]
    fn base32_ignores_case_separators_and_padding(
        bytes in prop::collection::vec(any::<u8>(), 1..64),
        noise in prop::collection::vec((any::<bool>(), prop::sample::select(vec!["", " ", "-", "\t"])), 0..120),
        padding in 0usize..8,
    ) {
        let encoded = base32::encode(&bytes);
        let mut messy = String::new();
        for (i, c) in encoded.chars().enumerate() {
            let (lower, separator) = noise.get(i).copied().unwrap_or((false, ""));
            messy.push(if lower { c.to_ascii_lowercase() } else { c });
            messy.push_str(separator);
        }
        messy.push_str(&"=".repeat(padding));
        prop_assert_eq!(base32::decode(&messy), Ok(bytes));
    }

    #[test]
    fn secrets_round_trip_through_base32(secret in secret()) {
        prop_assert_eq!(Secret::from_base32(&secret.to_base32()), Ok(secret));
    }

    #[test]
    fn formatting_then_parsing_a_uri_gives_the_same_parameters(params in params()) {
        let uri = params.to_uri();
        prop_assert_eq!(parse_otpauth_uri(&uri), Ok(params), "{}", uri);
    }

    #[test]
    fn a_parsed_uri_formats_to_a_canonical_uri_that_is_stable(params in params()) {
        let once = parse_otpauth_uri(&params.to_uri()).unwrap().to_uri();
        prop_assert_eq!(parse_otpauth_uri(&once).unwrap().to_uri(), once);
    }

    #[test]
    fn the_uri_parser_never_panics_on_arbitrary_text(input in any::<String>()) {
        let _ = parse_otpauth_uri(&input);
    }

    #[test]
    fn the_uri_parser_never_panics_on_text_that_looks_like_a_uri(
        kind in "(?i)(totp|hotp|x|)",
        label in text(),
        query in prop::collection::vec((text(), text()), 0..8),
    ) {
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = parse_otpauth_uri(&format!("otpauth://{kind}/{label}?{}", query.join("&")));
        let _ = parse_otpauth_uri(&format!("otpauth://{kind}/{label}?secret={}", query.join("&")));
    }

    #[test]
    fn the_base32_decoder_never_panics(input in any::<String>()) {
        let _ = base32::decode(&input);
        let _ = Secret::from_base32(&input);
    }

    #[test]
    fn the_migration_decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = google_export::decode_payload(&bytes);
    }

    #[test]
    fn the_migration_decoder_never_panics_on_arbitrary_text(input in any::<String>()) {
        let _ = google_export::decode(&input);
        let _ = google_export::decode(&format!("otpauth-migration://offline?data={input}"));
    }

    #[test]
    fn codes_have_exactly_their_digit_count_and_stay_below_the_modulus(
        secret in secret(), algorithm in algorithm(), digits in digits(), counter in any::<u64>(),
    ) {
        let code = Generator::new(&secret, algorithm, digits).code(counter);
        prop_assert!(code.value() < 10u32.pow(u32::from(digits.get())));
        prop_assert_eq!(code.to_string().len(), usize::from(digits.get()));
        let shown = code.to_string();
        let mut buf = [0u8; 8];
        prop_assert_eq!(code.write_ascii(&mut buf), shown.as_bytes());
    }

    #[test]
    fn a_totp_code_is_the_hotp_code_of_its_counter_and_expires_within_one_period(
        secret in secret(), algorithm in algorithm(), digits in digits(),
        seconds in 1..=u64::from(Period::MAX), t in any::<u64>(),
    ) {
        let period = Period::new(seconds).unwrap();
        let totp = Totp { secret: secret.clone(), algorithm, digits, period };
        prop_assert_eq!(totp.counter_at(t), t / seconds);
        prop_assert_eq!(totp.code_at(t), totpd_otp::hotp(&secret, algorithm, digits, t / seconds));
        let left = totp.expires_in(t);
        prop_assert!((1..=period.get()).contains(&left));
        // The code changes exactly when it expires.
        if let Some(next) = t.checked_add(u64::from(left)) {
            prop_assert_eq!(totp.counter_at(next), totp.counter_at(t) + 1);
            prop_assert_eq!(totp.counter_at(next - 1), totp.counter_at(t));
        }
    }
}
