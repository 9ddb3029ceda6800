//! What the JSON exports share: secret strings read straight into zeroized
//! memory, numbers and text read without repeating a value in a reason,
//! JSON errors that name only where and what kind of fault, and the entry
//! of an app's typical `kind`/`secret`/`algorithm`/`digits`/`period`/
//! `counter` fields.

use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::entry::Fields;
use crate::{Entry, Format, ImportError};

/// Parses a JSON document of `format` (after a byte-order mark and white
/// space) into `T`; the reason names only the position and kind of a
/// fault, since serde's messages can quote the offending value.
pub(crate) fn parse<T: DeserializeOwned>(format: Format, data: &[u8]) -> Result<T, ImportError> {
    serde_json::from_slice(crate::trim_text_start(data)).map_err(|error| {
        ImportError::malformed(
            format,
            format!(
                "the JSON does not parse or a field has the wrong type ({})",
                json_error(&error)
            ),
        )
    })
}

/// The numeric and text fields most authenticator apps store per entry, as
/// raw JSON values: each number must be a whole number or absent.
pub(crate) struct OtpFields<'a> {
    pub kind: &'a Value,
    pub secret: SecretText,
    pub algorithm: &'a Value,
    pub digits: &'a Value,
    pub period: &'a Value,
    pub counter: &'a Value,
    pub issuer: Option<String>,
    pub label: Option<String>,
}

impl OtpFields<'_> {
    /// The checked entry (see [`Fields::into_entry`]); a missing secret or
    /// a number that is not one makes it invalid, naming the field.
    pub(crate) fn into_entry(self) -> Entry {
        let (label, issuer) = (self.label, self.issuer);
        let Some(secret) = self.secret.0 else {
            return Entry::invalid(label, issuer, "the entry has no secret text");
        };
        let numbers = (|| {
            Ok::<_, String>((
                number(self.digits, "digits")?,
                number(self.period, "period")?,
                number(self.counter, "counter")?,
            ))
        })();
        let (digits, period, counter) = match numbers {
            Ok(numbers) => numbers,
            Err(reason) => return Entry::invalid(label, issuer, reason),
        };
        Fields {
            kind: text(self.kind),
            secret,
            algorithm: text(self.algorithm),
            digits,
            period,
            counter,
            issuer,
            label,
        }
        .into_entry()
    }
}

/// The text of a JSON string; `None` for anything else.
pub(crate) fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// A JSON whole number, `None` when absent or null, or a reason naming
/// `field` (never its value) when it is something else.
pub(crate) fn number(value: &Value, field: &str) -> Result<Option<u64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => number
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("the {field} is not a whole number")),
        _ => Err(format!("the {field} is not a number")),
    }
}

/// Where and what kind of JSON error, without serde's message: a data error
/// would quote the value it found, which may be a secret.
pub(crate) fn json_error(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// A JSON field that should hold a secret: its text, read straight into
/// zeroized memory, or `None` when the field is absent or not a string
/// (read and dropped without being kept).
#[derive(Default)]
pub(crate) struct SecretText(pub(crate) Option<Zeroizing<String>>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretText, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = SecretText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretText, E> {
        Ok(SecretText(Some(Zeroizing::new(value.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<SecretText, E> {
        Ok(SecretText(Some(Zeroizing::new(value))))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<SecretText, E> {
        Ok(SecretText(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SecretText, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SecretText(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretText, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(SecretText(None))
    }
}
