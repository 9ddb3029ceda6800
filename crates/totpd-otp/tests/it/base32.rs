//! Base32 decoding of secrets as services print them.

use totpd_otp::base32::{self, Base32Error};
use totpd_otp::{Secret, SecretError};

fn check_decodes(input: &str, expected: &[u8]) {
    assert_eq!(base32::decode(input).as_deref(), Ok(expected), "{input:?}");
}

fn check_refuses(input: &str, expected: Base32Error) {
    assert_eq!(base32::decode(input), Err(expected), "{input:?}");
}

#[test]
fn rfc_4648_test_vectors_decode_with_and_without_padding() {
    // RFC 4648 §10.
    let table: [(&str, &[u8]); 7] = [
        ("", b""),
        ("MY======", b"f"),
        ("MZXQ====", b"fo"),
        ("MZXW6===", b"foo"),
        ("MZXW6YQ=", b"foob"),
        ("MZXW6YTB", b"fooba"),
        ("MZXW6YTBOI======", b"foobar"),
    ];
    for (encoded, decoded) in table {
        check_decodes(encoded, decoded);
        check_decodes(encoded.trim_end_matches('='), decoded);
        assert_eq!(base32::encode(decoded), encoded.trim_end_matches('='));
    }
}

#[test]
fn case_spaces_tabs_and_hyphens_do_not_matter() {
    let expected = b"Hello!\xde\xad\xbe\xef";
    for input in [
        "JBSWY3DPEHPK3PXP",
        "jbswy3dpehpk3pxp",
        "JbSwY3dPeHpK3pXp",
        "jbsw y3dp ehpk 3pxp",
        "JBSW-Y3DP-EHPK-3PXP",
        "\tJBSW\tY3DP EHPK-3PXP ",
        "JBSWY3DPEHPK3PXP========",
        "JBSWY3DPEHPK3PXP = =",
    ] {
        check_decodes(input, expected);
    }
}

#[test]
fn an_invalid_character_is_named_with_its_position_counting_from_one() {
    check_refuses(
        "JBS1Y3DP",
        Base32Error::InvalidCharacter {
            character: '1',
            position: 4,
        },
    );
    // Ignored characters count towards the position.
    check_refuses(
        "JBSW Y3D8",
        Base32Error::InvalidCharacter {
            character: '8',
            position: 9,
        },
    );
    // Positions count characters, not bytes.
    check_refuses(
        "éé0",
        Base32Error::InvalidCharacter {
            character: 'é',
            position: 1,
        },
    );
    for bad in ['0', '1', '8', '9', '+', '/', '\n', '_', '.'] {
        let input = format!("MZXW6YT{bad}");
        check_refuses(
            &input,
            Base32Error::InvalidCharacter {
                character: bad,
                position: 8,
            },
        );
    }
    assert_eq!(
        base32::decode("JBS1").unwrap_err().to_string(),
        "invalid base32 character '1' at position 4"
    );
}

#[test]
fn padding_in_the_middle_is_refused() {
    check_refuses("MY==MZXQ", Base32Error::PaddingNotAtEnd { position: 3 });
    check_refuses("=MZXQ", Base32Error::PaddingNotAtEnd { position: 1 });
    assert_eq!(
        base32::decode("MY=A").unwrap_err().to_string(),
        "base32 padding '=' at position 3 is followed by more data"
    );
}

#[test]
fn lengths_that_no_encoder_produces_are_refused() {
    for (input, symbols) in [
        ("M", 1),
        ("MZX", 3),
        ("MZXW6Y", 6),
        ("MZXW6YTBM", 9),
        ("MZXW 6Y==", 6),
    ] {
        check_refuses(input, Base32Error::InvalidLength { symbols });
    }
    assert_eq!(
        base32::decode("JBSWY3DPE").unwrap_err().to_string(),
        "base32 input has 9 characters, a length no encoder produces (one is missing or extra)"
    );
}

#[test]
fn leftover_bits_after_the_last_byte_are_ignored() {
    // "MZ" encodes 'f' with the last two bits 0 ("MY"); "MZ" sets one of them.
    check_decodes("MZ", b"f");
    check_decodes("MZXW7", b"foo");
}

#[test]
fn a_secret_from_base32_must_have_one_to_256_bytes() {
    assert_eq!(
        Secret::from_base32(" - "),
        Err(Base32Error::Secret(SecretError::Empty))
    );
    let too_long = base32::encode(&[1; 257]);
    assert_eq!(
        Secret::from_base32(&too_long),
        Err(Base32Error::Secret(SecretError::TooLong { len: 257 }))
    );
    let longest = base32::encode(&[1; 256]);
    assert_eq!(Secret::from_base32(&longest).unwrap().as_bytes(), [1; 256]);
}

#[test]
fn an_80_bit_secret_decodes_to_ten_bytes() {
    let secret = Secret::from_base32("GEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(secret.as_bytes(), b"1234567890");
}
