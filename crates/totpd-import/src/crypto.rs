//! The ciphers more than one export shares.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use zeroize::Zeroizing;

/// AES-256-GCM decryption of `ciphertext` with a separate `tag`, into
/// memory that is zeroized on drop. `None` when the key, nonce or tag has
/// the wrong length or the tag does not verify.
pub(crate) fn open_aes256_gcm(
    key: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce).ok()?;
    let tag = aes_gcm::aead::Tag::<Aes256Gcm>::try_from(tag).ok()?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into(), &tag)
        .ok()?;
    Some(buffer)
}
