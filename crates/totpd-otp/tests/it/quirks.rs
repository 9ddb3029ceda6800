//! The otpauth quirk corpus: URIs real services hand out (accepted, with the
//! parameters they must give) and malformed ones (refused, with the reason).
//! Each row is its own test.

use totpd_otp::{
    Algorithm, Base32Error, OtpKind, OtpParams, ParamError, SecretError, UriError, UriPart,
    parse_otpauth_uri,
};

use crate::{digits, period, totp};

/// "Hello!\xde\xad\xbe\xef" in base32, the secret of most rows.
const HELLO: &[u8] = b"Hello!\xde\xad\xbe\xef";

fn check_accepted(uri: &str, expected: OtpParams) {
    match parse_otpauth_uri(uri) {
        Ok(params) => assert_eq!(params, expected, "{uri}"),
        Err(error) => panic!("{uri} was refused: {error}"),
    }
}

fn check_rejected(uri: &str, expected: UriError, message: &str) {
    let error = parse_otpauth_uri(uri).expect_err(uri);
    assert_eq!(error, expected, "{uri}");
    assert_eq!(error.to_string(), message, "{uri}");
    // Whatever the secret is, the message never repeats it.
    if let Some(secret) = secret_in(uri) {
        assert!(!error.to_string().contains(secret), "{error}");
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
}

fn secret_in(uri: &str) -> Option<&str> {
    let start = uri.find("secret=")? + "secret=".len();
    let value = uri[start..].split('&').next()?;
    (value.len() >= 4).then_some(value)
}

macro_rules! accepted {
    ($($name:ident: $uri:expr => $expected:expr;)*) => {$(
        #[test]
        fn $name() {
            check_accepted($uri, $expected);
        }
    )*};
}

macro_rules! rejected {
    ($($name:ident: $uri:expr => $expected:expr, $message:expr;)*) => {$(
        #[test]
        fn $name() {
            check_rejected($uri, $expected, $message);
        }
    )*};
}

accepted! {
    colon_encoded_as_percent_3a_separates_issuer_and_account:
        "otpauth://totp/Big%20Corp%3Aana@example.com?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Big Corp"), "ana@example.com");
    lower_case_percent_3a_also_separates_issuer_and_account:
        "otpauth://totp/Big%20Corp%3aana?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Big Corp"), "ana");
    issuer_parameter_wins_over_a_different_label_prefix:
        "otpauth://totp/Old%20Name:bob?secret=JBSWY3DPEHPK3PXP&issuer=New%20Name"
        => totp(HELLO, Some("New Name"), "bob");
    a_uri_with_no_issuer_at_all_has_none:
        "otpauth://totp/bob@example.com?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, None, "bob@example.com");
    issuer_only_in_the_label_is_taken_from_the_prefix:
        "otpauth://totp/Example:bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Example"), "bob");
    issuer_only_as_a_parameter_leaves_the_whole_label_as_account:
        "otpauth://totp/bob?issuer=Example&secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Example"), "bob");
    spaces_after_the_label_colon_are_trimmed:
        "otpauth://totp/Example:%20%20bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Example"), "bob");
    a_literal_space_after_the_label_colon_is_trimmed:
        "otpauth://totp/Example: bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Example"), "bob");
    only_the_first_colon_splits_the_label:
        "otpauth://totp/Example:bob:home?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Example"), "bob:home");
    an_empty_issuer_parameter_falls_back_to_the_label_prefix:
        "otpauth://totp/Example:bob?secret=JBSWY3DPEHPK3PXP&issuer="
        => totp(HELLO, Some("Example"), "bob");
    an_empty_label_prefix_is_no_issuer:
        "otpauth://totp/:bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, None, "bob");
    a_uri_without_a_label_has_an_empty_account:
        "otpauth://totp?secret=JBSWY3DPEHPK3PXP&issuer=Example"
        => totp(HELLO, Some("Example"), "");
    a_uri_with_an_empty_label_has_an_empty_account:
        "otpauth://totp/?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, None, "");
    lower_case_secret_is_accepted:
        "otpauth://totp/bob?secret=jbswy3dpehpk3pxp"
        => totp(HELLO, None, "bob");
    spaces_in_the_secret_are_ignored:
        "otpauth://totp/bob?secret=JBSW%20Y3DP%20EHPK%203PXP"
        => totp(HELLO, None, "bob");
    plus_signs_in_the_secret_are_spaces_and_ignored:
        "otpauth://totp/bob?secret=JBSW+Y3DP+EHPK+3PXP"
        => totp(HELLO, None, "bob");
    hyphens_in_the_secret_are_ignored:
        "otpauth://totp/bob?secret=jbsw-y3dp-ehpk-3pxp"
        => totp(HELLO, None, "bob");
    missing_padding_is_accepted:
        "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY"
        => totp(b"1234567890123456", None, "bob");
    padding_is_accepted:
        "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY======"
        => totp(b"1234567890123456", None, "bob");
    padding_encoded_as_percent_3d_is_accepted:
        "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY%3D%3D%3D%3D%3D%3D"
        => totp(b"1234567890123456", None, "bob");
    lower_case_algorithm_is_accepted:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=sha256"
        => OtpParams { algorithm: Algorithm::Sha256, ..totp(HELLO, None, "bob") };
    hyphenated_algorithm_is_accepted:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=SHA-512"
        => OtpParams { algorithm: Algorithm::Sha512, ..totp(HELLO, None, "bob") };
    eight_digits_and_a_60_second_period_are_accepted:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=8&period=60"
        => OtpParams {
            digits: digits(8),
            kind: OtpKind::Totp { period: period(60) },
            ..totp(HELLO, None, "bob")
        };
    seven_digits_are_accepted:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=7"
        => OtpParams { digits: digits(7), ..totp(HELLO, None, "bob") };
    a_period_of_one_day_is_the_longest_accepted:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=86400"
        => OtpParams { kind: OtpKind::Totp { period: period(86_400) }, ..totp(HELLO, None, "bob") };
    unknown_parameters_are_ignored:
        "otpauth://totp/ACME:bob?secret=JBSWY3DPEHPK3PXP&issuer=ACME\
         &image=https%3A%2F%2Fexample.com%2Flogo.png&lock=true&color=0a7cff&foo"
        => totp(HELLO, Some("ACME"), "bob");
    upper_case_scheme_and_type_are_accepted:
        "OTPAUTH://TOTP/ACME:bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("ACME"), "bob");
    parameter_names_in_any_case_are_accepted:
        "otpauth://totp/bob?SECRET=JBSWY3DPEHPK3PXP&Digits=8&ISSUER=Acme"
        => OtpParams { digits: digits(8), ..totp(HELLO, Some("Acme"), "bob") };
    percent_encoded_utf8_in_label_and_issuer_is_decoded:
        "otpauth://totp/Z%C3%BCrich%20Bank:j%C3%B6rg?secret=JBSWY3DPEHPK3PXP\
         &issuer=Z%C3%BCrich%20Bank%20%E2%9C%93"
        => totp(HELLO, Some("Zürich Bank ✓"), "jörg");
    raw_utf8_in_the_label_is_accepted:
        "otpauth://totp/東京:ユーザー?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("東京"), "ユーザー");
    an_80_bit_secret_is_accepted:
        "otpauth://totp/GitHub:bob?secret=GEZDGNBVGY3TQOJQ&issuer=GitHub"
        => totp(b"1234567890", Some("GitHub"), "bob");
    a_plus_in_the_label_stays_a_plus:
        "otpauth://totp/Mail:bob+work@example.com?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Mail"), "bob+work@example.com");
    a_plus_in_the_issuer_parameter_is_a_space:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&issuer=Big+Corp"
        => totp(HELLO, Some("Big Corp"), "bob");
    a_hash_sign_is_an_ordinary_character:
        "otpauth://totp/Shop%20#1:bob?secret=JBSWY3DPEHPK3PXP"
        => totp(HELLO, Some("Shop #1"), "bob");
    empty_query_segments_are_skipped:
        "otpauth://totp/bob?&secret=JBSWY3DPEHPK3PXP&&digits=6&"
        => totp(HELLO, None, "bob");
    surrounding_whitespace_such_as_a_pasted_newline_is_ignored:
        "  otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP\r\n"
        => totp(HELLO, None, "bob");
    spaces_around_numbers_and_algorithm_are_ignored:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=%208&period=+60+&algorithm=%20SHA1"
        => OtpParams {
            digits: digits(8),
            kind: OtpKind::Totp { period: period(60) },
            ..totp(HELLO, None, "bob")
        };
    hotp_with_a_counter_is_accepted:
        "otpauth://hotp/Acme:bob?secret=JBSWY3DPEHPK3PXP&counter=42"
        => OtpParams { kind: OtpKind::Hotp { counter: 42 }, ..totp(HELLO, Some("Acme"), "bob") };
    hotp_takes_the_largest_counter:
        "otpauth://HOTP/bob?secret=JBSWY3DPEHPK3PXP&counter=18446744073709551615"
        => OtpParams { kind: OtpKind::Hotp { counter: u64::MAX }, ..totp(HELLO, None, "bob") };
    hotp_ignores_a_period:
        "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP&counter=0&period=0"
        => OtpParams { kind: OtpKind::Hotp { counter: 0 }, ..totp(HELLO, None, "bob") };
    totp_ignores_a_counter:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&counter=x"
        => totp(HELLO, None, "bob");
}

rejected! {
    a_non_otpauth_scheme_is_refused:
        "https://totp/bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::UnsupportedScheme { scheme: "https".into() },
        "unsupported scheme \"https\" (expected \"otpauth\")";
    a_migration_uri_is_not_an_otpauth_uri:
        "otpauth-migration://offline?data=CgA%3D"
        => UriError::UnsupportedScheme { scheme: "otpauth-migration".into() },
        "unsupported scheme \"otpauth-migration\" (expected \"otpauth\")";
    a_secret_pasted_before_a_colon_is_not_echoed_as_a_scheme:
        "JBSWY3DPEHPK3PXP:alice@example.com"
        => UriError::UnsupportedScheme { scheme: String::new() },
        "unsupported scheme (expected \"otpauth\")";
    a_bare_base32_secret_is_not_a_uri_and_is_not_echoed:
        "JBSWY3DPEHPK3PXP"
        => UriError::MissingScheme,
        "not a URI: expected it to start with \"otpauth://\"";
    text_before_a_colon_that_is_not_a_scheme_is_not_echoed:
        "my secret: JBSWY3DPEHPK3PXP"
        => UriError::MissingScheme,
        "not a URI: expected it to start with \"otpauth://\"";
    otpauth_without_slashes_is_refused:
        "otpauth:totp/bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::MissingSlashes,
        "expected \"//\" after \"otpauth:\"";
    a_missing_secret_is_refused:
        "otpauth://totp/bob?issuer=Example"
        => UriError::MissingParameter { name: "secret" },
        "parameter \"secret\" is missing";
    an_empty_secret_is_refused:
        "otpauth://totp/bob?secret=&issuer=Example"
        => UriError::EmptyParameter { name: "secret" },
        "parameter \"secret\" is empty";
    a_secret_of_only_spaces_is_empty:
        "otpauth://totp/bob?secret=%20+%20"
        => UriError::EmptyParameter { name: "secret" },
        "parameter \"secret\" is empty";
    a_secret_with_a_non_base32_character_is_refused_naming_it:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PX1"
        => UriError::InvalidSecret(Base32Error::InvalidCharacter { character: '1', position: 16 }),
        "parameter \"secret\" is invalid: invalid base32 character '1' at position 16";
    a_secret_with_a_truncated_length_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPE"
        => UriError::InvalidSecret(Base32Error::InvalidLength { symbols: 9 }),
        "parameter \"secret\" is invalid: base32 input has 9 characters, a length no encoder produces (one is missing or extra)";
    a_secret_with_padding_in_the_middle_is_refused:
        "otpauth://totp/bob?secret=JBSW%3DY3DPEHPK3PXP"
        => UriError::InvalidSecret(Base32Error::PaddingNotAtEnd { position: 5 }),
        "parameter \"secret\" is invalid: base32 padding '=' at position 5 is followed by more data";
    a_secret_over_256_bytes_is_refused:
        concat!("otpauth://totp/bob?secret=", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB",
            "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB", "AEAQCAIB")
        => UriError::InvalidSecret(Base32Error::Secret(SecretError::TooLong { len: 260 })),
        "parameter \"secret\" is invalid: secret is 260 bytes long, more than the maximum of 256";
    digits_below_six_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=5"
        => UriError::InvalidParameter { name: "digits", reason: ParamError::DigitsOutOfRange { digits: 5 } },
        "parameter \"digits\" is invalid: digits must be 6, 7 or 8, not 5";
    digits_above_eight_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=10"
        => UriError::InvalidParameter { name: "digits", reason: ParamError::DigitsOutOfRange { digits: 10 } },
        "parameter \"digits\" is invalid: digits must be 6, 7 or 8, not 10";
    digits_that_are_not_a_number_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=six"
        => UriError::NotAnInteger { name: "digits" },
        "parameter \"digits\" must be a non-negative whole number";
    digits_with_a_sign_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=%2B6"
        => UriError::NotAnInteger { name: "digits" },
        "parameter \"digits\" must be a non-negative whole number";
    digits_too_large_for_any_integer_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=99999999999999999999"
        => UriError::NotAnInteger { name: "digits" },
        "parameter \"digits\" must be a non-negative whole number";
    empty_digits_are_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits="
        => UriError::EmptyParameter { name: "digits" },
        "parameter \"digits\" is empty";
    an_unknown_algorithm_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=MD5"
        => UriError::InvalidParameter { name: "algorithm", reason: ParamError::UnknownAlgorithm { name: Some("MD5") } },
        "parameter \"algorithm\" is invalid: unsupported algorithm \"MD5\" (expected SHA1, SHA256 or SHA512)";
    a_zero_period_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=0"
        => UriError::InvalidParameter { name: "period", reason: ParamError::PeriodOutOfRange { seconds: 0 } },
        "parameter \"period\" is invalid: period must be between 1 and 86400 seconds, not 0";
    a_negative_period_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=-30"
        => UriError::NotAnInteger { name: "period" },
        "parameter \"period\" must be a non-negative whole number";
    a_period_over_one_day_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=86401"
        => UriError::InvalidParameter { name: "period", reason: ParamError::PeriodOutOfRange { seconds: 86_401 } },
        "parameter \"period\" is invalid: period must be between 1 and 86400 seconds, not 86401";
    a_fractional_period_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=30.5"
        => UriError::NotAnInteger { name: "period" },
        "parameter \"period\" must be a non-negative whole number";
    an_unknown_type_is_refused:
        "otpauth://motp/bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::UnsupportedType { kind: Some("motp") },
        "unsupported type \"motp\" (expected \"totp\" or \"hotp\")";
    a_missing_type_is_refused:
        "otpauth:///bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::MissingType,
        "missing type after \"otpauth://\" (expected \"totp\" or \"hotp\")";
    a_repeated_parameter_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&period=30&period=60"
        => UriError::RepeatedParameter { name: Some("period"), first: 2, second: 3 },
        "parameter \"period\" appears twice (query parameters 2 and 3)";
    a_repeated_secret_is_refused_even_in_another_case:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&SECRET=GEZDGNBVGY3TQOJQ"
        => UriError::RepeatedParameter { name: Some("secret"), first: 1, second: 2 },
        "parameter \"secret\" appears twice (query parameters 1 and 2)";
    a_repeated_unknown_parameter_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&image=a&image=b"
        => UriError::RepeatedParameter { name: Some("image"), first: 2, second: 3 },
        "parameter \"image\" appears twice (query parameters 2 and 3)";
    hotp_without_a_counter_is_refused:
        "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::MissingParameter { name: "counter" },
        "parameter \"counter\" is missing";
    hotp_with_a_negative_counter_is_refused:
        "otpauth://hotp/bob?secret=JBSWY3DPEHPK3PXP&counter=-1"
        => UriError::NotAnInteger { name: "counter" },
        "parameter \"counter\" must be a non-negative whole number";
    a_bad_percent_escape_in_the_label_is_refused:
        "otpauth://totp/Acme%2:bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::InvalidPercentEncoding { part: UriPart::Label },
        "invalid percent-encoding in the label";
    a_label_that_is_not_utf8_is_refused:
        "otpauth://totp/Acme%FF:bob?secret=JBSWY3DPEHPK3PXP"
        => UriError::InvalidUtf8 { part: UriPart::Label },
        "the label is not valid UTF-8 after percent-decoding";
    an_issuer_that_is_not_utf8_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&issuer=%C3%28"
        => UriError::InvalidUtf8 { part: UriPart::Parameter("issuer") },
        "parameter \"issuer\" is not valid UTF-8 after percent-decoding";
    a_bad_percent_escape_in_the_secret_is_refused_without_echoing_it:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP%G0"
        => UriError::InvalidPercentEncoding { part: UriPart::Parameter("secret") },
        "invalid percent-encoding in parameter \"secret\"";
    a_bad_percent_escape_in_a_parameter_name_is_refused:
        "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&im%zzage=1"
        => UriError::InvalidPercentEncoding { part: UriPart::ParameterName { position: 2 } },
        "invalid percent-encoding in the name of query parameter 2";
}

#[test]
fn a_long_unknown_type_is_not_quoted_back() {
    let long_type = "x".repeat(500);
    let error = parse_otpauth_uri(&format!(
        "otpauth://{long_type}/bob?secret=JBSWY3DPEHPK3PXP"
    ))
    .unwrap_err();
    assert_eq!(error, UriError::UnsupportedType { kind: None });
    assert_eq!(
        error.to_string(),
        "unsupported type (expected \"totp\" or \"hotp\")"
    );
}

/// A base32 secret as someone might paste it into the wrong part of a URI.
const PASTED: &str = "JBSWY3DPEHPK3PXPGEZDGNBV";

/// Inputs with [`PASTED`] where an error is about; no error may repeat it.
fn pasted_secret_inputs() -> Vec<String> {
    let lower = PASTED.to_lowercase();
    let p = PASTED;
    vec![
        // Bare tokens are parameters with empty values: a repeated name.
        format!("otpauth://totp/x?{p}&{p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&{lower}=1&{p}=2"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&{p}%zz=1"),
        format!("otpauth://totp/x?{p}%FF"),
        format!("otpauth://{p}/x?secret=JBSWY3DPEHPK3PXP"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=-{p}"),
        format!("otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm={p}"),
        format!("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=SHA{p}"),
        format!("otpauth://totp/x?secret={p}1"),
        format!("otpauth://totp/x?secret={p}%G0"),
        format!("otpauth://totp/x?secret={p}&secret={p}"),
        format!("otpauth://totp/x?secret=%FF{p}"),
        format!("{p}:alice"),
        p.to_owned(),
        format!("otpauth:{p}"),
        format!("otpauth-migration://{p}?data=CgA"),
        format!("otpauth-migration://offline?{p}&{p}"),
        format!("otpauth-migration://offline?data=CgA&{p}%zz"),
        format!("otpauth-migration://offline?data={p}*"),
        format!("{p}://offline?data=CgA"),
    ]
}

/// Whether `message` contains any six consecutive characters of [`PASTED`],
/// in any case.
fn repeats_the_paste(message: &str) -> bool {
    let message = message.to_uppercase();
    PASTED
        .as_bytes()
        .windows(6)
        .any(|window| message.contains(std::str::from_utf8(window).unwrap()))
}

#[test]
fn no_error_repeats_a_secret_pasted_anywhere_in_a_uri() {
    for input in pasted_secret_inputs() {
        let messages = if input.to_ascii_lowercase().starts_with("otpauth-migration") {
            let error = totpd_otp::google_export::decode(&input).expect_err(&input);
            [error.to_string(), format!("{error:?}")]
        } else {
            let error = parse_otpauth_uri(&input).expect_err(&input);
            [error.to_string(), format!("{error:?}")]
        };
        for message in messages {
            assert!(
                !repeats_the_paste(&message),
                "the error for input #{} repeats the pasted secret: {message}",
                pasted_secret_inputs()
                    .iter()
                    .position(|i| *i == input)
                    .unwrap_or_default()
            );
        }
    }
}

#[test]
fn a_repeated_unknown_parameter_is_named_by_position_only() {
    let error = parse_otpauth_uri(&format!("otpauth://totp/x?{PASTED}&{PASTED}")).unwrap_err();
    assert_eq!(
        error,
        UriError::RepeatedParameter {
            name: None,
            first: 1,
            second: 2
        }
    );
    assert_eq!(
        error.to_string(),
        "a parameter name appears twice (query parameters 1 and 2)"
    );
}

#[test]
fn an_unknown_algorithm_that_is_no_known_hash_is_not_quoted() {
    let error = parse_otpauth_uri("otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&algorithm=GEZDGNBV")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "parameter \"algorithm\" is invalid: unsupported algorithm (expected SHA1, SHA256 or SHA512)"
    );
}
