//! Code generation: the RFC vectors and the behaviour around them.

use totpd_otp::{
    Algorithm, Digits, Generator, ParamError, Period, Secret, SecretError, Totp, hotp,
};

use crate::{digits, period, secret};

/// The RFC seeds: ASCII "1234567890" repeated to the hash's output length
/// (RFC 6238 Appendix A, `seed`, `seed32`, `seed64`).
fn rfc_seed(algorithm: Algorithm) -> Secret {
    let len = match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    secret(&b"1234567890".repeat(7)[..len])
}

/// One row of an RFC table.
struct Vector {
    algorithm: Algorithm,
    digits: u8,
    counter_or_time: u64,
    expected: &'static str,
}

/// Runs every row, reporting all mismatches at once.
fn check(vectors: &[Vector], compute: impl Fn(&Vector) -> String) {
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            let got = compute(v);
            (got != v.expected).then(|| {
                format!(
                    "{} {} digits at {}: expected {}, got {got}",
                    v.algorithm, v.digits, v.counter_or_time, v.expected
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const fn row(algorithm: Algorithm, counter_or_time: u64, expected: &'static str) -> Vector {
    Vector {
        algorithm,
        digits: expected.len() as u8,
        counter_or_time,
        expected,
    }
}

/// RFC 4226 Appendix D: HOTP, SHA-1, the 20-byte seed, counters 0 to 9.
const RFC_4226_APPENDIX_D: [Vector; 10] = [
    row(Algorithm::Sha1, 0, "755224"),
    row(Algorithm::Sha1, 1, "287082"),
    row(Algorithm::Sha1, 2, "359152"),
    row(Algorithm::Sha1, 3, "969429"),
    row(Algorithm::Sha1, 4, "338314"),
    row(Algorithm::Sha1, 5, "254676"),
    row(Algorithm::Sha1, 6, "287922"),
    row(Algorithm::Sha1, 7, "162583"),
    row(Algorithm::Sha1, 8, "399871"),
    row(Algorithm::Sha1, 9, "520489"),
];

/// RFC 6238 Appendix B: TOTP, 8 digits, 30 s, per-algorithm seeds.
const RFC_6238_APPENDIX_B: [Vector; 18] = [
    row(Algorithm::Sha1, 59, "94287082"),
    row(Algorithm::Sha256, 59, "46119246"),
    row(Algorithm::Sha512, 59, "90693936"),
    row(Algorithm::Sha1, 1111111109, "07081804"),
    row(Algorithm::Sha256, 1111111109, "68084774"),
    row(Algorithm::Sha512, 1111111109, "25091201"),
    row(Algorithm::Sha1, 1111111111, "14050471"),
    row(Algorithm::Sha256, 1111111111, "67062674"),
    row(Algorithm::Sha512, 1111111111, "99943326"),
    row(Algorithm::Sha1, 1234567890, "89005924"),
    row(Algorithm::Sha256, 1234567890, "91819424"),
    row(Algorithm::Sha512, 1234567890, "93441116"),
    row(Algorithm::Sha1, 2000000000, "69279037"),
    row(Algorithm::Sha256, 2000000000, "90698825"),
    row(Algorithm::Sha512, 2000000000, "38618901"),
    row(Algorithm::Sha1, 20000000000, "65353130"),
    row(Algorithm::Sha256, 20000000000, "77737706"),
    row(Algorithm::Sha512, 20000000000, "47863826"),
];

#[test]
fn rfc_4226_appendix_d_hotp_values_all_match() {
    check(&RFC_4226_APPENDIX_D, |v| {
        hotp(
            &rfc_seed(v.algorithm),
            v.algorithm,
            digits(v.digits),
            v.counter_or_time,
        )
        .to_string()
    });
}

#[test]
fn rfc_4226_appendix_d_values_also_match_through_a_generator() {
    let generator = Generator::new(&rfc_seed(Algorithm::Sha1), Algorithm::Sha1, digits(6));
    check(&RFC_4226_APPENDIX_D, |v| {
        generator.code(v.counter_or_time).to_string()
    });
}

#[test]
fn rfc_6238_appendix_b_totp_values_all_match() {
    check(&RFC_6238_APPENDIX_B, |v| {
        let totp = Totp {
            secret: rfc_seed(v.algorithm),
            algorithm: v.algorithm,
            digits: digits(v.digits),
            period: period(30),
        };
        totp.code_at(v.counter_or_time).to_string()
    });
}

#[test]
fn the_same_counter_gives_different_codes_per_algorithm() {
    let secret = rfc_seed(Algorithm::Sha1);
    let codes: Vec<_> = Algorithm::ALL
        .iter()
        .map(|&a| hotp(&secret, a, digits(8), 1).value())
        .collect();
    assert_ne!(codes[0], codes[1]);
    assert_ne!(codes[1], codes[2]);
}

#[test]
fn seven_digit_codes_are_the_truncated_value_modulo_ten_million() {
    let secret = rfc_seed(Algorithm::Sha1);
    // RFC 4226 Appendix D lists the truncated value for counter 0: 1284755224.
    let code = hotp(&secret, Algorithm::Sha1, digits(7), 0);
    assert_eq!(code.value(), 1_284_755_224 % 10_000_000);
    assert_eq!(code.to_string(), "4755224");
}

#[test]
fn codes_are_zero_padded_to_their_digit_count() {
    let totp = Totp {
        secret: rfc_seed(Algorithm::Sha1),
        algorithm: Algorithm::Sha1,
        digits: digits(8),
        period: period(30),
    };
    let code = totp.code_at(1111111109);
    assert_eq!(code.value(), 7081804);
    assert_eq!(code.to_string(), "07081804");
    let mut buf = [0u8; 8];
    assert_eq!(code.write_ascii(&mut buf), b"07081804");
    assert_eq!(code.digits(), digits(8));
}

#[test]
fn expires_in_counts_down_from_the_period_to_one() {
    let totp = Totp {
        secret: secret(b"k"),
        algorithm: Algorithm::Sha1,
        digits: digits(6),
        period: period(30),
    };
    assert_eq!(totp.expires_in(0), 30);
    assert_eq!(totp.expires_in(1), 29);
    assert_eq!(totp.expires_in(29), 1);
    assert_eq!(totp.expires_in(30), 30);
    assert_eq!(totp.expires_in(59), 1);
    assert_eq!(totp.counter_at(59), 1);
    assert_eq!(totp.counter_at(60), 2);
}

#[test]
fn a_one_second_period_changes_code_every_second_and_expires_in_one() {
    let totp = Totp {
        secret: rfc_seed(Algorithm::Sha1),
        algorithm: Algorithm::Sha1,
        digits: digits(6),
        period: period(1),
    };
    assert_eq!(totp.expires_in(12345), 1);
    assert_eq!(totp.counter_at(12345), 12345);
    // Counter 3 of the RFC 4226 table.
    assert_eq!(totp.code_at(3).to_string(), "969429");
}

#[test]
fn the_largest_times_do_not_overflow() {
    let totp = Totp {
        secret: secret(b"k"),
        algorithm: Algorithm::Sha512,
        digits: digits(8),
        period: period(u64::from(Period::MAX)),
    };
    let t = u64::MAX;
    assert_eq!(totp.counter_at(t), u64::MAX / 86_400);
    assert_eq!(totp.expires_in(t), 86_400 - (u64::MAX % 86_400) as u32);
    assert_eq!(totp.code_at(t).to_string().len(), 8);
}

#[test]
fn a_generator_agrees_with_hotp_for_every_algorithm_and_digit_count() {
    let secret = secret(b"a generator must agree with the one-shot function");
    for algorithm in Algorithm::ALL {
        for n in Digits::MIN..=Digits::MAX {
            let generator = Generator::new(&secret, algorithm, digits(n));
            assert_eq!(generator.algorithm(), algorithm);
            for counter in [0, 1, 2, 1000, u64::MAX] {
                assert_eq!(
                    generator.code(counter),
                    hotp(&secret, algorithm, digits(n), counter)
                );
            }
        }
    }
}

#[test]
fn secrets_longer_than_the_hash_block_are_hashed_first() {
    // RFC 2104 §2: a key longer than the block (64 bytes for SHA-1 and
    // SHA-256, 128 for SHA-512) is replaced by its hash. 200 bytes exercises
    // that path for all three; the expected codes come from oathtool
    // (`--totp=ALG -d 8 -s 1s -N @1` with the key in hex).
    let secret = secret(&[0x5a; 200]);
    let codes: Vec<String> = Algorithm::ALL
        .iter()
        .map(|&a| hotp(&secret, a, digits(8), 1).to_string())
        .collect();
    assert_eq!(codes, ["90271750", "29725625", "84642493"]);
}

#[test]
fn secrets_of_one_to_256_bytes_are_accepted_and_others_refused() {
    assert_eq!(Secret::from_bytes(vec![]), Err(SecretError::Empty));
    assert_eq!(
        Secret::from_bytes(vec![0; 257]),
        Err(SecretError::TooLong { len: 257 })
    );
    assert_eq!(Secret::from_bytes(vec![7]).unwrap().as_bytes(), [7]);
    assert_eq!(
        Secret::from_bytes(vec![7; 256]).unwrap().as_bytes().len(),
        256
    );
    assert_eq!(
        SecretError::TooLong { len: 300 }.to_string(),
        "secret is 300 bytes long, more than the maximum of 256"
    );
}

#[test]
fn secrets_compare_by_content() {
    assert_eq!(secret(b"abc"), secret(b"abc"));
    assert_ne!(secret(b"abc"), secret(b"abd"));
    assert_ne!(secret(b"abc"), secret(b"abcd"));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let secret = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
    let totp = Totp {
        secret: secret.clone(),
        algorithm: Algorithm::Sha256,
        digits: digits(6),
        period: period(30),
    };
    let generator = totp.generator();
    for shown in [
        format!("{secret:?}"),
        format!("{totp:?}"),
        format!("{generator:?}"),
    ] {
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("JBSW"), "{shown}");
        assert!(!shown.contains("72, 101"), "{shown}");
    }
    assert_eq!(format!("{secret:?}"), "[redacted]");
}

#[test]
fn secrets_format_as_upper_case_unpadded_base32() {
    let secret = Secret::from_base32("jbsw y3dp ehpk 3pxp").unwrap();
    assert_eq!(secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
    assert_eq!(secret.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
}

#[test]
fn digits_outside_six_to_eight_are_refused() {
    for n in [0, 5, 9, 255] {
        assert_eq!(
            Digits::new(n),
            Err(ParamError::DigitsOutOfRange {
                digits: u64::from(n)
            })
        );
    }
    for n in 6..=8 {
        assert_eq!(Digits::new(n).unwrap().get(), n);
    }
    assert_eq!(Digits::default().get(), 6);
    assert_eq!(
        Digits::new(9).unwrap_err().to_string(),
        "digits must be 6, 7 or 8, not 9"
    );
}

#[test]
fn periods_outside_one_second_to_one_day_are_refused() {
    for seconds in [0, 86_401, u64::MAX] {
        assert_eq!(
            Period::new(seconds),
            Err(ParamError::PeriodOutOfRange { seconds })
        );
    }
    assert_eq!(Period::new(1).unwrap().get(), 1);
    assert_eq!(Period::new(86_400).unwrap().get(), Period::MAX);
    assert_eq!(Period::default().get(), 30);
    assert_eq!(
        Period::new(0).unwrap_err().to_string(),
        "period must be between 1 and 86400 seconds, not 0"
    );
}

#[test]
fn algorithm_names_parse_in_any_case_with_or_without_a_hyphen() {
    let table = [
        ("SHA1", Algorithm::Sha1),
        ("sha1", Algorithm::Sha1),
        ("Sha-1", Algorithm::Sha1),
        ("SHA256", Algorithm::Sha256),
        ("sha-256", Algorithm::Sha256),
        ("SHA512", Algorithm::Sha512),
        ("sHa-512", Algorithm::Sha512),
    ];
    for (name, expected) in table {
        assert_eq!(name.parse::<Algorithm>(), Ok(expected), "{name}");
    }
    for name in [
        "MD5", "", "SHA", "SHA-", "SHA--1", "SHA224", "SHA3-256", " SHA1", "shä1",
    ] {
        assert!(name.parse::<Algorithm>().is_err(), "{name}");
    }
    assert_eq!(
        "MD5".parse::<Algorithm>().unwrap_err().to_string(),
        "unsupported algorithm \"MD5\" (expected SHA1, SHA256 or SHA512)"
    );
    for algorithm in Algorithm::ALL {
        assert_eq!(algorithm.to_string().parse::<Algorithm>(), Ok(algorithm));
        assert_eq!(algorithm.to_string(), algorithm.as_str());
    }
}
