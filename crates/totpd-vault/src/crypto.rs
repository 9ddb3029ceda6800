//! Envelope encryption of secrets with the master key (AES-256-GCM).
//!
//! The master key never encrypts anything directly: purpose-specific keys are
//! derived from it with HMAC-SHA-256 (a PRF keyed by a uniformly random key is
//! a sound KDF for this), so one master key can never be misused across
//! purposes.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the master key in bytes.
const MASTER_KEY_LEN: usize = 32;
/// AES-GCM nonce length: 96 bits, drawn at random for every encryption.
pub(crate) const NONCE_LEN: usize = 12;

/// Errors while reading a master key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// The text is not valid base64.
    #[error("master key is not valid base64")]
    NotBase64,
    /// The decoded key does not have 32 bytes.
    #[error("master key must be 32 bytes (base64 of 32 random bytes), got {0} bytes")]
    WrongLength(usize),
}

/// The 256-bit master key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
    /// Derived key that seals secrets.
    seal_key: Zeroizing<[u8; 32]>,
    /// Public identifier of this key, stored beside every ciphertext.
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

impl MasterKey {
    /// Draws a fresh random master key from the operating system.
    pub fn generate() -> Result<MasterKey, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        getrandom::fill(bytes.as_mut())?;
        Ok(MasterKey::from_array(bytes))
    }

    /// Parses the base64 text form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, MasterKeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        if decoded.len() != MASTER_KEY_LEN {
            return Err(MasterKeyError::WrongLength(decoded.len()));
        }
        // Copied straight into a zeroizing array: a plain `[u8; 32]` from
        // `try_into` would leave an unwiped copy of the key on the stack.
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        for (to, from) in bytes.iter_mut().zip(decoded.iter()) {
            *to = *from;
        }
        Ok(MasterKey::from_array(bytes))
    }

    /// The base64 text form, for writing a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_ref()))
    }

    /// The key's public identifier, recorded with every ciphertext it seals
    /// so that a later master-key rotation knows which key opens which row.
    /// It is derived one-way from the key and reveals nothing about it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn from_array(bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> MasterKey {
        let seal_key = Zeroizing::new(derive(bytes.as_ref(), b"totpd/v1/seal"));
        let id_bytes = derive(bytes.as_ref(), b"totpd/v1/key-id");
        let id = format!("mk1:{}", hex(id_bytes.get(..8).unwrap_or_default()));
        MasterKey {
            bytes,
            seal_key,
            id,
        }
    }

    /// Encrypts `plaintext` with a fresh random nonce, binding it to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let cipher = self.cipher()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let ciphertext = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        Ok(Sealed {
            sealed_by: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts and authenticates `sealed` against `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.sealed_by != self.id {
            return Err(CryptoError::UnknownKey);
        }
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Open)?;
        let cipher = self.cipher()?;
        cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }

    fn cipher(&self) -> Result<Aes256Gcm, CryptoError> {
        Aes256Gcm::new_from_slice(self.seal_key.as_ref()).map_err(|_| CryptoError::Seal)
    }
}

/// Why a master-key ring could not be read. Messages name the position of
/// a bad key (its line, or its place in a comma-separated list), never any
/// of its text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// There is no key at all (only blank lines or separators).
    #[error("holds no master key")]
    Empty,
    /// One entry is not a master key.
    #[error("{unit} {position} is invalid: {reason}")]
    Invalid {
        /// `line` (key file) or `key` (comma-separated list).
        unit: &'static str,
        /// 1-based position of the entry.
        position: usize,
        /// What is wrong with it.
        reason: MasterKeyError,
    },
    /// One entry repeats an earlier one.
    #[error("{unit} {position} repeats {unit} {first}")]
    Duplicate {
        /// `line` (key file) or `key` (comma-separated list).
        unit: &'static str,
        /// 1-based position of the repetition.
        position: usize,
        /// 1-based position of the first occurrence.
        first: usize,
    },
}

/// The master keys in use, for rotation: the first (the sealing key) seals
/// everything new; any of them opens a ciphertext that records its id.
/// Never empty. `Debug` shows ids only.
#[derive(Clone, Debug)]
pub struct MasterKeyRing {
    sealing: MasterKey,
    others: Vec<MasterKey>,
}

impl From<MasterKey> for MasterKeyRing {
    fn from(key: MasterKey) -> MasterKeyRing {
        MasterKeyRing {
            sealing: key,
            others: Vec::new(),
        }
    }
}

impl MasterKeyRing {
    /// A ring of `keys`, the first sealing; `None` if there is none.
    pub fn new(keys: Vec<MasterKey>) -> Option<MasterKeyRing> {
        let mut keys = keys.into_iter();
        let sealing = keys.next()?;
        Some(MasterKeyRing {
            sealing,
            others: keys.collect(),
        })
    }

    /// A key file's text: one base64 key per line; blank lines and the
    /// spaces around a key are ignored.
    pub fn from_lines(text: &str) -> Result<MasterKeyRing, RingError> {
        MasterKeyRing::parse(text.lines(), "line")
    }

    /// A comma-separated list of base64 keys (`TOTPD_MASTER_KEY`); empty
    /// items and the spaces around a key are ignored.
    pub fn from_comma_list(text: &str) -> Result<MasterKeyRing, RingError> {
        MasterKeyRing::parse(text.split(','), "key")
    }

    fn parse<'a>(
        entries: impl Iterator<Item = &'a str>,
        unit: &'static str,
    ) -> Result<MasterKeyRing, RingError> {
        let mut keys: Vec<(usize, MasterKey)> = Vec::new();
        for (index, entry) in entries.enumerate() {
            let position = index + 1;
            if entry.trim().is_empty() {
                continue;
            }
            let key = MasterKey::from_base64(entry).map_err(|reason| RingError::Invalid {
                unit,
                position,
                reason,
            })?;
            if let Some((first, _)) = keys.iter().find(|(_, k)| k.id() == key.id()) {
                return Err(RingError::Duplicate {
                    unit,
                    position,
                    first: *first,
                });
            }
            keys.push((position, key));
        }
        MasterKeyRing::new(keys.into_iter().map(|(_, key)| key).collect()).ok_or(RingError::Empty)
    }

    /// The key that seals everything new.
    pub fn sealing(&self) -> &MasterKey {
        &self.sealing
    }

    /// Every key, the sealing key first.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.sealing).chain(self.others.iter())
    }

    /// The ids of every key, the sealing key first.
    pub fn ids(&self) -> Vec<String> {
        self.keys().map(|k| k.id().to_owned()).collect()
    }

    /// Whether the ring holds the key with this id.
    pub fn holds(&self, key_id: &str) -> bool {
        self.keys().any(|k| k.id() == key_id)
    }

    /// Seals with the sealing key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        self.sealing.seal(plaintext, aad)
    }

    /// Opens with the key whose id `sealed` records;
    /// [`CryptoError::UnknownKey`] if the ring does not hold it.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.keys()
            .find(|k| k.id() == sealed.sealed_by)
            .ok_or(CryptoError::UnknownKey)?
            .open(sealed, aad)
    }
}

/// HMAC-SHA-256(key, label): a one-way derivation of a purpose key.
pub(crate) fn derive(key: &[u8], label: &[u8]) -> [u8; 32] {
    hmac_sha256(key, label)
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0u8; 32],
    };
    mac.update(message);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            // A nibble is below 16, so the fallback is never taken.
            s.push(
                DIGITS
                    .get(usize::from(nibble))
                    .map_or('0', |&d| char::from(d)),
            );
        }
    }
    s
}

/// An unambiguous byte encoding of named fields, for what a MAC or an AEAD
/// authenticates: a domain label, then each field as its name and its
/// value, both length-prefixed (name: one byte; value: eight bytes, big
/// endian). No two different sequences of fields encode alike, whatever
/// bytes the values hold, so no field can bleed into its neighbour.
///
/// The domain names the structure and its version (`totpd/api-key/v2`):
/// a new version adds fields under a new domain, and rows of the old one
/// keep being checked against the old encoding. Buffers are zeroized on
/// drop, since a field may be a secret.
pub(crate) struct Canonical(Zeroizing<Vec<u8>>);

impl Canonical {
    /// Starts an encoding under `domain`.
    pub(crate) fn new(domain: &'static str) -> Canonical {
        let mut bytes = Zeroizing::new(Vec::with_capacity(128));
        push_short(&mut bytes, domain.as_bytes());
        Canonical(bytes)
    }

    /// Appends the field `name` with `value`.
    pub(crate) fn field(mut self, name: &'static str, value: &[u8]) -> Canonical {
        push_short(&mut self.0, name.as_bytes());
        let len = u64::try_from(value.len()).unwrap_or(u64::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value);
        self
    }

    /// The encoded bytes.
    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// A one-byte length and the bytes (names and domains are short constants).
fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

/// A ciphertext with everything needed to open it again, except the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key that sealed it.
    pub sealed_by: String,
    /// The random 96-bit nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the 128-bit GCM tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("sealed_by", &self.sealed_by)
            .field("ciphertext", &"[redacted]")
            .finish()
    }
}

impl Sealed {
    /// One self-describing byte string: `key_id_len | key_id | nonce | ciphertext`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let id = self.sealed_by.as_bytes();
        let mut out = Vec::with_capacity(1 + id.len() + self.nonce.len() + self.ciphertext.len());
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Sealed> {
        let (&len, rest) = bytes.split_first()?;
        let (id, rest) = rest.split_at_checked(usize::from(len))?;
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN)?;
        Some(Sealed {
            sealed_by: String::from_utf8(id.to_vec()).ok()?,
            nonce: nonce.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// Failures of the envelope encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The operating system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Encryption failed.
    #[error("encryption failed")]
    Seal,
    /// The ciphertext was sealed by another master key.
    #[error("ciphertext was sealed by a different master key")]
    UnknownKey,
    /// The ciphertext or its associated data was altered, or the key is wrong.
    #[error("ciphertext failed authentication")]
    Open,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_with_the_same_associated_data() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"hello", b"account-1|secret-1").unwrap();
        assert_eq!(
            key.open(&sealed, b"account-1|secret-1").unwrap().as_slice(),
            b"hello"
        );
        assert!(key.open(&sealed, b"account-2|secret-1").is_err());
    }

    #[test]
    fn two_seals_of_the_same_plaintext_use_different_nonces() {
        let key = MasterKey::generate().unwrap();
        let a = key.seal(b"hello", b"x").unwrap();
        let b = key.seal(b"hello", b"x").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn another_master_key_cannot_open_a_ciphertext() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        let sealed = a.seal(b"hello", b"x").unwrap();
        assert!(b.open(&sealed, b"x").is_err());
        let forged = Sealed {
            sealed_by: b.id().to_owned(),
            ..sealed
        };
        assert!(b.open(&forged, b"x").is_err());
    }

    #[test]
    fn master_key_round_trips_through_base64_and_debug_hides_it() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let again = MasterKey::from_base64(&text).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(!format!("{key:?}").contains(text.as_str()));
        assert!(format!("{key:?}").contains("[redacted]"));
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(MasterKeyError::WrongLength(3))
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::NotBase64)
        ));
    }

    #[test]
    fn canonical_encodings_of_different_fields_differ() {
        let encode = |fields: &[(&'static str, &[u8])]| {
            fields
                .iter()
                .fold(Canonical::new("d"), |c, (name, value)| c.field(name, value))
                .finish()
                .to_vec()
        };
        let base = encode(&[("a", b"xy"), ("b", b"z")]);
        assert_ne!(base, encode(&[("a", b"x"), ("b", b"yz")]));
        assert_ne!(base, encode(&[("a", b"xyz")]));
        assert_ne!(base, encode(&[("b", b"z"), ("a", b"xy")]));
        assert_ne!(
            base,
            Canonical::new("e")
                .field("a", b"xy")
                .field("b", b"z")
                .finish()
                .to_vec()
        );
        assert_eq!(base, encode(&[("a", b"xy"), ("b", b"z")]));
    }

    #[test]
    fn a_ring_seals_with_its_first_key_and_opens_with_any() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let by_old = MasterKeyRing::from(old.clone()).seal(b"s", b"x").unwrap();
        let text = format!(
            "\n  {}  \n\n{}\n",
            new.to_base64().as_str(),
            old.to_base64().as_str()
        );
        let ring = MasterKeyRing::from_lines(&text).unwrap();
        assert_eq!(ring.ids(), [new.id().to_owned(), old.id().to_owned()]);
        assert_eq!(ring.sealing().id(), new.id());
        assert_eq!(ring.open(&by_old, b"x").unwrap().as_slice(), b"s");
        let sealed = ring.seal(b"t", b"x").unwrap();
        assert_eq!(sealed.sealed_by, new.id());
        assert!(matches!(
            MasterKeyRing::from(old.clone()).open(&sealed, b"x"),
            Err(CryptoError::UnknownKey)
        ));
        let list = format!(
            " {} , {},",
            new.to_base64().as_str(),
            old.to_base64().as_str()
        );
        assert_eq!(
            MasterKeyRing::from_comma_list(&list).unwrap().ids(),
            ring.ids()
        );
    }

    #[test]
    fn a_bad_ring_entry_is_named_by_position_without_its_text() {
        let good = MasterKey::generate().unwrap();
        let good = good.to_base64();
        let bad = "bm90IGEga2V5IGF0IGFsbA==";
        let text = format!("{}\n\n{bad}\n", good.as_str());
        let message = MasterKeyRing::from_lines(&text).unwrap_err().to_string();
        assert_eq!(
            message,
            "line 3 is invalid: master key must be 32 bytes (base64 of 32 random bytes), got 16 bytes"
        );
        assert!(!message.contains(bad) && !message.contains(good.as_str()));
        let message = MasterKeyRing::from_comma_list(&format!("{},sec!ret", good.as_str()))
            .unwrap_err()
            .to_string();
        assert_eq!(message, "key 2 is invalid: master key is not valid base64");
        let message = MasterKeyRing::from_lines(&format!("{0}\n{0}", good.as_str()))
            .unwrap_err()
            .to_string();
        assert_eq!(message, "line 2 repeats line 1");
        assert!(matches!(
            MasterKeyRing::from_lines(" \n\n"),
            Err(RingError::Empty)
        ));
        assert!(matches!(
            MasterKeyRing::from_comma_list(" , "),
            Err(RingError::Empty)
        ));
    }

    #[test]
    fn sealed_bytes_round_trip() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"hello", b"x").unwrap();
        assert_eq!(Sealed::from_bytes(&sealed.to_bytes()).unwrap(), sealed);
        assert!(Sealed::from_bytes(&[200, 1, 2]).is_none());
    }
}
