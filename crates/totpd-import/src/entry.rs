//! Building [`Entry`]s from what an export says of one credential, shared
//! by every reader so that each app's entries are checked alike.

use totpd_otp::{Algorithm, Digits, OtpKind, OtpParams, Period, Secret};
use zeroize::Zeroizing;

use crate::Entry;

/// What an app's export says of one credential, before it is checked.
#[derive(Default)]
pub(crate) struct Fields {
    /// The app's name for the kind (`totp`, `hotp`, `steam`, `motp`, ...),
    /// any case; `None` means TOTP.
    pub kind: Option<String>,
    /// The secret as base32 text (lenient: any case, spaces, padding).
    pub secret: Zeroizing<String>,
    /// `SHA1`, `SHA256`, `SHA512` in any case (`None`: SHA1).
    pub algorithm: Option<String>,
    /// Code length (`None`: 6).
    pub digits: Option<u64>,
    /// TOTP step in seconds (`None`: 30).
    pub period: Option<u64>,
    /// HOTP counter of the next code (`None`: 0).
    pub counter: Option<u64>,
    /// The service; an empty or blank one counts as none.
    pub issuer: Option<String>,
    /// The account name; may be empty.
    pub label: Option<String>,
}

/// Kinds some apps export that the vault cannot serve, named in reasons.
const UNSERVED_KINDS: [&str; 6] = ["steam", "motp", "yandex", "yaotp", "mobileotp", "battlenet"];

impl Fields {
    /// The checked entry: [`Entry::Otp`] when every field is one the vault
    /// serves, else [`Entry::Invalid`] naming the first field that is not.
    /// Reasons never repeat the secret.
    pub(crate) fn into_entry(self) -> Entry {
        let issuer = self.issuer.filter(|issuer| !issuer.trim().is_empty());
        let label = self.label;
        let invalid = |reason: String| Entry::invalid(label.clone(), issuer.clone(), reason);
        let hotp = match self.kind.as_deref().map(str::trim) {
            None => false,
            Some(kind) if kind.eq_ignore_ascii_case("totp") || kind.is_empty() => false,
            Some(kind) if kind.eq_ignore_ascii_case("hotp") => true,
            Some(kind) => return invalid(unserved_kind(kind)),
        };
        let secret = match Secret::from_base32(&self.secret) {
            Ok(secret) => secret,
            Err(error) => return invalid(format!("the secret is not valid base32: {error}")),
        };
        let algorithm = match self.algorithm.as_deref().map(str::trim) {
            None | Some("") => Algorithm::Sha1,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(algorithm) => algorithm,
                Err(error) => return invalid(error.to_string()),
            },
        };
        let digits = match self.digits.map(Digits::try_from).transpose() {
            Ok(digits) => digits.unwrap_or_default(),
            Err(error) => return invalid(error.to_string()),
        };
        let kind = if hotp {
            OtpKind::Hotp {
                counter: self.counter.unwrap_or(0),
            }
        } else {
            match self.period.map(Period::new).transpose() {
                Ok(period) => OtpKind::Totp {
                    period: period.unwrap_or_default(),
                },
                Err(error) => return invalid(error.to_string()),
            }
        };
        Entry::Otp(OtpParams {
            kind,
            secret,
            algorithm,
            digits,
            issuer,
            account: label.unwrap_or_default(),
        })
    }
}

/// The reason for a kind the vault does not serve. The kind is named only
/// when it is one of the well-known ones: anything else in that field could
/// be pasted secret material.
pub(crate) fn unserved_kind(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match UNSERVED_KINDS.iter().find(|known| **known == lower) {
        Some(known) => format!("a {known} entry: totpd serves TOTP and HOTP codes only"),
        None => "an entry of an unknown kind: totpd serves TOTP and HOTP codes only".to_owned(),
    }
}

/// The entry of a field that holds either an `otpauth://` URI or a bare
/// base32 secret (Bitwarden's `login.totp`, 1Password's one-time password
/// field). A URI without an account name or issuer takes the item's
/// `label` and `issuer`; a bare secret gets the defaults (TOTP, SHA1, 6
/// digits, 30 seconds). `steam://` is refused as a Steam entry.
pub(crate) fn from_uri_or_secret(
    value: &str,
    label: Option<String>,
    issuer: Option<String>,
) -> Entry {
    let value = value.trim();
    if crate::text::has_scheme(value, "steam://") {
        return Entry::invalid(label, issuer, unserved_kind("steam"));
    }
    if crate::text::is_otp_uri(value) {
        let mut entries = Vec::with_capacity(1);
        crate::text::push_uri(value, &mut entries);
        let entry = match entries.len() {
            1 => entries.pop(),
            _ => None,
        };
        return match entry {
            Some(Entry::Otp(mut params)) => {
                if params.account.trim().is_empty() {
                    params.account = label.unwrap_or_default();
                }
                if params.issuer.is_none() {
                    params.issuer = issuer.filter(|issuer| !issuer.trim().is_empty());
                }
                Entry::Otp(params)
            }
            Some(Entry::Invalid(invalid)) => Entry::invalid(label, issuer, invalid.reason),
            None => Entry::invalid(
                label,
                issuer,
                "a migration URI in place of one credential's URI",
            ),
        };
    }
    Fields {
        secret: Zeroizing::new(value.to_owned()),
        issuer,
        label,
        ..Fields::default()
    }
    .into_entry()
}
