//! Enrollment from what a person has in hand, read into OTP parameters.
//!
//! [`read`] turns one file into [`Entry`]s: each is either the OTP
//! parameters of one credential, or the reason it cannot be served (a Steam
//! or mOTP entry, a URI that does not parse, ...). A file that cannot be read
//! at all (no known format, a wrong password, an image without a QR code)
//! is an [`ImportError`] and gives no entries.
//!
//! Formats (DESIGN §2.5): QR screenshots and photos, `otpauth://` URI lists
//! (also Ente Auth's plain export), Google Authenticator's
//! `otpauth-migration://` URIs, and the exports of Aegis, 2FAS, andOTP,
//! Bitwarden, 1Password (`.1pux`), Ente Auth and Proton Authenticator, each
//! plain and, where the app has one, password-encrypted. [`Format::Auto`]
//! detects which.
//!
//! Like `totpd-otp`, this crate does no I/O and reads no clock. Every
//! reader is bounded by its input and by [`Limits`] (entries, image pixels,
//! archive sizes, key-derivation cost), never panics, and keeps secrets out
//! of errors and reasons. Passwords are zeroized after use.

use std::fmt;

use totpd_otp::OtpParams;
use zeroize::Zeroizing;

mod aegis;
mod andotp;
mod bitwarden;
mod crypto;
mod ente;
mod entry;
mod json;
mod onepux;
mod proton;
mod qr;
mod text;
mod twofas;

/// The file formats [`read`] takes (the `format` of DESIGN §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Detect the format from the bytes.
    Auto,
    /// A PNG, JPEG or WebP image with one or more QR codes anywhere in it.
    Qr,
    /// Text, one `otpauth://` URI per line.
    Otpauth,
    /// Google Authenticator `otpauth-migration://` URIs, one per line (the
    /// text of each QR code of a "Transfer accounts" export).
    Google,
    /// An Aegis vault export, plain or encrypted.
    Aegis,
    /// A 2FAS backup, plain or encrypted.
    TwoFas,
    /// An andOTP backup: plain JSON, or the encrypted `.json.aes`.
    Andotp,
    /// A Bitwarden JSON export, plain or password-protected.
    Bitwarden,
    /// A 1Password `.1pux` export.
    OnePux,
    /// An Ente Auth export: plain text or the encrypted JSON.
    Ente,
    /// A Proton Authenticator export, plain or encrypted.
    Proton,
}

impl Format {
    /// Every format, `auto` first.
    pub const ALL: [Format; 11] = [
        Format::Auto,
        Format::Qr,
        Format::Otpauth,
        Format::Google,
        Format::Aegis,
        Format::TwoFas,
        Format::Andotp,
        Format::Bitwarden,
        Format::OnePux,
        Format::Ente,
        Format::Proton,
    ];

    /// The format's name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Qr => "qr",
            Format::Otpauth => "otpauth",
            Format::Google => "google",
            Format::Aegis => "aegis",
            Format::TwoFas => "2fas",
            Format::Andotp => "andotp",
            Format::Bitwarden => "bitwarden",
            Format::OnePux => "1pux",
            Format::Ente => "ente",
            Format::Proton => "proton",
        }
    }

    /// The format named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The names of every format, `auto` first, comma-separated.
    pub fn names() -> String {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The password of an encrypted export. Zeroized on drop, `[redacted]` in
/// `Debug`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Password {
        Password(Zeroizing::new(password))
    }

    /// The password text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The password's UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One credential found in a file.
#[derive(Debug)]
pub enum Entry {
    /// A credential the vault can serve.
    Otp(OtpParams),
    /// A credential it cannot: a kind it does not serve (Steam, Yandex,
    /// mOTP, ...) or a damaged entry. The other entries are unaffected.
    Invalid(Invalid),
}

/// Why one entry of a file cannot be imported, with the names the file
/// gave it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The entry's account name or label, when the file has one.
    pub label: Option<String>,
    /// The entry's issuer, when the file has one.
    pub issuer: Option<String>,
    /// What is wrong, for a person: never holds secret material.
    pub reason: String,
}

impl Entry {
    /// An invalid entry with the given names and reason.
    pub fn invalid(
        label: Option<String>,
        issuer: Option<String>,
        reason: impl Into<String>,
    ) -> Entry {
        Entry::Invalid(Invalid {
            label,
            issuer,
            reason: reason.into(),
        })
    }
}

/// Why a whole file cannot be read. Every message is safe to show the
/// person who sent it: none holds secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// `auto` found no format that reads the bytes.
    #[error("the file is not a format totpd can import ({})", format_names())]
    UnknownFormat,
    /// The file is of the named format but damaged or not as documented.
    #[error("not a valid {format} file: {reason}")]
    Malformed {
        /// The format that was expected.
        format: Format,
        /// What is wrong.
        reason: String,
    },
    /// The export is encrypted and no password was given.
    #[error("this {format} export is encrypted: give its password")]
    PasswordRequired {
        /// The export's format.
        format: Format,
    },
    /// The password does not open the export (or the export was altered).
    #[error("the password does not open this {format} export")]
    WrongPassword {
        /// The export's format.
        format: Format,
    },
    /// The export's key derivation asks for more work or memory than
    /// [`Limits`] allows (a hostile file could otherwise stall the server).
    #[error("this {format} export's key derivation is too costly: {reason}")]
    TooCostly {
        /// The export's format.
        format: Format,
        /// Which parameter is over which bound.
        reason: String,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("the file has more than {max} entries")]
    TooManyEntries {
        /// The bound.
        max: usize,
    },
    /// The image's dimensions are over [`Limits::max_image_pixels`]; it was
    /// not decoded.
    #[error(
        "the image is {width}×{height} pixels, more than the {max_pixels} pixels totpd decodes"
    )]
    ImageTooLarge {
        /// Width in pixels, as the image's header says.
        width: u32,
        /// Height in pixels, as the image's header says.
        height: u32,
        /// The bound on width × height.
        max_pixels: u64,
    },
    /// The bytes are not a PNG, JPEG or WebP image that decodes.
    #[error("the image cannot be read: {reason}")]
    Image {
        /// What the decoder said, or which format is missing.
        reason: String,
    },
    /// The image decodes but no QR code was found in it.
    #[error("no QR code was found in the image")]
    NoQrCode,
    /// QR codes were found, but none holds an `otpauth://` or
    /// `otpauth-migration://` URI.
    #[error("the image's QR codes hold no otpauth:// or otpauth-migration:// URI")]
    NoOtpQrCode,
    /// An archive (1pux) has more members, or more uncompressed bytes, than
    /// [`Limits`] allows.
    #[error("the archive is too large: {reason}")]
    ArchiveTooLarge {
        /// Which bound was passed.
        reason: String,
    },
}

fn format_names() -> String {
    let names: Vec<&str> = Format::ALL[1..].iter().map(|f| f.as_str()).collect();
    names.join(", ")
}

impl ImportError {
    /// A [`ImportError::Malformed`] of `format`.
    pub(crate) fn malformed(format: Format, reason: impl Into<String>) -> ImportError {
        ImportError::Malformed {
            format,
            reason: reason.into(),
        }
    }
}

/// Bounds that keep a hostile file cheap. The defaults admit every real
/// export we know of with room to spare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries in one file (a Google batch counts each of its entries).
    pub max_entries: usize,
    /// Width × height of an image, checked from its header before any
    /// pixel is decoded (decompression bombs).
    pub max_image_pixels: u64,
    /// Members of an archive (1pux).
    pub max_archive_members: usize,
    /// Uncompressed bytes read from an archive, all members together.
    pub max_archive_bytes: u64,
    /// Iterations of a PBKDF2 key derivation.
    pub max_kdf_iterations: u32,
    /// Memory of a memory-hard key derivation (scrypt, Argon2), in KiB.
    pub max_kdf_memory_kib: u32,
    /// Passes of an Argon2 key derivation.
    pub max_kdf_passes: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
            max_image_pixels: 25_000_000,
            max_archive_members: 10_000,
            max_archive_bytes: 64 * 1024 * 1024,
            max_kdf_iterations: 2_000_000,
            // Ente Auth derives its export key with 1 GiB (libsodium's
            // "sensitive" limit); at most IMPORT_READERS such derivations
            // run at once per node.
            max_kdf_memory_kib: 1024 * 1024,
            max_kdf_passes: 16,
        }
    }
}

/// Reads one file of `format` (or detects it with [`Format::Auto`]),
/// opening an encrypted export with `password`.
///
/// Entries come in file order. An entry that cannot be served is an
/// [`Entry::Invalid`] whose reason says why, so the rest of the file still
/// imports; a file that cannot be read at all is an [`ImportError`].
/// A password given for a plain export is ignored.
pub fn read(
    format: Format,
    data: &[u8],
    password: Option<&Password>,
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let format = match format {
        Format::Auto => detect(data).ok_or(ImportError::UnknownFormat)?,
        known => known,
    };
    let entries = match format {
        Format::Auto => return Err(ImportError::UnknownFormat),
        Format::Qr => qr::read(data, limits)?,
        Format::Otpauth | Format::Google => text::read(format, data, limits)?,
        Format::Aegis => aegis::read(data, password, limits)?,
        Format::TwoFas => twofas::read(data, password, limits)?,
        Format::Andotp => andotp::read(data, password, limits)?,
        Format::Bitwarden => bitwarden::read(data, password, limits)?,
        Format::OnePux => onepux::read(data, limits)?,
        Format::Ente => ente::read(data, password, limits)?,
        Format::Proton => proton::read(data, password, limits)?,
    };
    check_count(entries.len(), limits)?;
    if entries.is_empty() {
        return Err(ImportError::malformed(format, "it holds no entry"));
    }
    Ok(entries)
}

/// [`ImportError::TooManyEntries`] when `count` is over the bound; readers
/// call it as they go, so a huge file stops early.
pub(crate) fn check_count(count: usize, limits: &Limits) -> Result<(), ImportError> {
    if count > limits.max_entries {
        return Err(ImportError::TooManyEntries {
            max: limits.max_entries,
        });
    }
    Ok(())
}

/// Whether a parsed JSON document is of one format.
type JsonSniffer = fn(&serde_json::Value) -> bool;

/// The format of `data`, if it is one this crate reads. Cheap: magic bytes
/// for images and archives, one JSON parse for the JSON exports, a scan of
/// the lines for text.
pub fn detect(data: &[u8]) -> Option<Format> {
    if qr::sniff(data) {
        return Some(Format::Qr);
    }
    if onepux::sniff(data) {
        return Some(Format::OnePux);
    }
    let trimmed = trim_text_start(data);
    if (trimmed.starts_with(b"{") || trimmed.starts_with(b"["))
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(trimmed)
    {
        // Most specific first: each sniffer looks for the keys its format
        // documents, and no two formats share them.
        let sniffers: [(Format, JsonSniffer); 6] = [
            (Format::Aegis, aegis::sniff),
            (Format::TwoFas, twofas::sniff),
            (Format::Bitwarden, bitwarden::sniff),
            (Format::Proton, proton::sniff),
            (Format::Ente, ente::sniff),
            (Format::Andotp, andotp::sniff),
        ];
        return sniffers
            .into_iter()
            .find(|(_, sniff)| sniff(&json))
            .map(|(format, _)| format);
    }
    if let Some(format) = text::detect(data) {
        return Some(format);
    }
    andotp::sniff_encrypted(data).then_some(Format::Andotp)
}

/// `data` without a leading UTF-8 byte-order mark and white space.
pub(crate) fn trim_text_start(data: &[u8]) -> &[u8] {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data.get(start..).unwrap_or_default()
}
