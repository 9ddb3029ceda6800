//! The tools: their definitions (description, input and output schemas,
//! annotations) and their calls over a [`TotpBackend`].
//!
//! Every failure a model can act on (bad arguments, an unknown or ambiguous
//! name, a refusal of the API) is a tool error (`isError: true`) whose text
//! says what to do next, so the session goes on; protocol errors are kept
//! for requests that are not tool calls at all.

use std::sync::Arc;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::backend::{BackendError, NewSecretInput, SecretSummary, TotpBackend};

pub(crate) const LIST: &str = "list_totp_secrets";
pub(crate) const GET_CODE: &str = "get_totp_code";
pub(crate) const ADD: &str = "add_totp_secret";
pub(crate) const VERIFY: &str = "verify_totp_code";
pub(crate) const DELETE: &str = "delete_totp_secret";

/// Most secrets one list answers (the model's context is the limit, not
/// the vault); `truncated` says when more matched.
const LIST_LIMIT: u32 = 200;
/// Most secrets read to resolve a name: names are meant to be specific.
const NAME_LIMIT: u32 = 1000;
/// Most candidates an ambiguous or unknown name lists.
const MAX_CANDIDATES: usize = 20;
/// Longest query or name, in characters (the REST API's filter limit).
const MAX_NAME_CHARS: usize = 256;
/// Longest code accepted for verification.
const MAX_CODE_CHARS: usize = 32;
/// Longest URI, secret, label or issuer passed on (the API has its own,
/// smaller limits; this only keeps absurd input from travelling further).
const MAX_FIELD_CHARS: usize = 8192;
/// Largest QR image, decoded: the REST import's body limit.
const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest `min_remaining`: the longest period the API accepts.
const MAX_MIN_REMAINING: u64 = 86_400;

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    })
}

fn secret_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "Secret id: pass it as secret_id to the other tools."},
            "label": {"type": "string", "description": "Account name, e.g. an email address."},
            "issuer": {"type": ["string", "null"], "description": "Service the secret belongs to, e.g. GitHub."},
            "type": {"type": "string", "enum": ["totp", "hotp"]},
            "algorithm": {"type": "string", "enum": ["SHA1", "SHA256", "SHA512"]},
            "digits": {"type": "integer"},
            "period": {"type": "integer", "description": "Seconds per code (TOTP)."}
        },
        "required": ["id", "label", "issuer", "type", "algorithm", "digits", "period"]
    })
}

/// How `secret_id` is described wherever a tool takes it.
fn secret_id_property() -> Value {
    json!({"type": "string", "format": "uuid", "description": "Id of the secret, from list_totp_secrets. Preferred over name."})
}

/// How `name` is described wherever a tool takes it.
fn name_property() -> Value {
    json!({"type": "string", "maxLength": MAX_NAME_CHARS, "description": "Label or issuer of the secret (case-insensitive; an exact match wins, else a unique substring match). Used when secret_id is absent."})
}

/// Every tool this server has; `delete_totp_secret` only when deletion is
/// allowed.
pub(crate) fn definitions(allow_delete: bool) -> Vec<Tool> {
    let mut tools = vec![
        Tool::new(
            LIST,
            "List the TOTP/HOTP secrets this API key can use: id, label (account name), issuer (service), type, algorithm, digits and period. \
             Use it to find the secret_id of an account before asking for a code, or to see what is enrolled. \
             Optional query: keep only secrets whose label or issuer contains it (case-insensitive). \
             Never returns secret keys or codes; changes nothing.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "maxLength": MAX_NAME_CHARS, "description": "Substring of the label or issuer, case-insensitive."}
                },
                "additionalProperties": false
            })),
        )
        .with_title("List TOTP secrets")
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "secrets": {"type": "array", "items": secret_schema()},
                "truncated": {"type": "boolean", "description": "More secrets matched than were listed; narrow the query."}
            },
            "required": ["secrets", "truncated"]
        })))
        .with_annotations(
            ToolAnnotations::with_title("List TOTP secrets")
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
        ),
        Tool::new(
            GET_CODE,
            "Get the current one-time code (2FA code) of a stored secret, to type into a login or confirmation form. \
             Name the secret by secret_id (from list_totp_secrets) or by name (its label or issuer, case-insensitive); \
             an unknown or ambiguous name is an error listing the candidates, so choose one and call again with its secret_id. \
             Returns the code, its digits and, for TOTP, expires_in (seconds) and expires_at; for HOTP, the counter used \
             (each HOTP call consumes a counter). Set min_remaining to the seconds you need to use the code: the answer waits \
             for the next code if the current one expires sooner. Never returns the secret key. Each code read is audited.",
            schema(json!({
                "type": "object",
                "properties": {
                    "secret_id": secret_id_property(),
                    "name": name_property(),
                    "min_remaining": {"type": "integer", "minimum": 0, "maximum": MAX_MIN_REMAINING, "description": "Seconds the code must still be valid for (at most the secret's period); the call may wait up to that long."}
                },
                "additionalProperties": false
            })),
        )
        .with_title("Get a TOTP code")
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "secret_id": {"type": "string", "format": "uuid"},
                "label": {"type": "string"},
                "issuer": {"type": ["string", "null"]},
                "type": {"type": "string", "enum": ["totp", "hotp"]},
                "code": {"type": "string"},
                "digits": {"type": "integer"},
                "expires_in": {"type": "integer", "description": "TOTP: seconds the code stays valid."},
                "expires_at": {"type": "string", "description": "TOTP: expiry, RFC 3339 UTC."},
                "period": {"type": "integer"},
                "counter": {"type": "integer", "description": "HOTP: the counter of this code."}
            },
            "required": ["secret_id", "type", "code", "digits"]
        })))
        .with_annotations(
            // Reading a code changes nothing a caller sees for TOTP, but an
            // HOTP read advances the counter and every read is audited: not
            // read-only, not idempotent, never destructive.
            ToolAnnotations::with_title("Get a TOTP code")
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        ),
        Tool::new(
            ADD,
            "Store a new TOTP/HOTP secret so codes can be generated later. Give exactly one of: uri (an otpauth:// URI, \
             as shown under a QR code's 'can't scan?' link), secret + label (+ issuer) (the base32 setup key shown by the service), \
             or qr_image (base64 of a PNG, JPEG or WebP screenshot of the enrollment QR code). \
             Returns the stored secret's id, label and issuer; a key already stored is reported as a duplicate with its id. \
             Never echoes the secret key back. Needs a key whose role may create secrets.",
            schema(json!({
                "type": "object",
                "properties": {
                    "uri": {"type": "string", "description": "otpauth://totp/... or otpauth://hotp/... URI."},
                    "secret": {"type": "string", "description": "Base32 setup key (spaces allowed)."},
                    "label": {"type": "string", "description": "Account name, with secret."},
                    "issuer": {"type": "string", "description": "Service name, with secret."},
                    "qr_image": {"type": "string", "contentEncoding": "base64", "description": "Base64 of a PNG, JPEG or WebP image holding the QR code."}
                },
                "additionalProperties": false
            })),
        )
        .with_title("Add a TOTP secret")
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "secrets": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "label": {"type": "string"},
                        "issuer": {"type": ["string", "null"]},
                        "outcome": {"type": "string", "enum": ["created", "duplicate"]}
                    },
                    "required": ["id", "label", "issuer", "outcome"]
                }},
                "skipped": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "label": {"type": ["string", "null"]},
                        "issuer": {"type": ["string", "null"]},
                        "reason": {"type": "string"}
                    },
                    "required": ["reason"]
                }}
            },
            "required": ["secrets", "skipped"]
        })))
        .with_annotations(
            ToolAnnotations::with_title("Add a TOTP secret")
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        ),
        Tool::new(
            VERIFY,
            "Check whether a one-time code is currently valid for a stored secret (for example a code a user typed). \
             Name the secret by secret_id or name, as for get_totp_code. Returns valid: true or false. \
             A code is accepted at most once, and repeated failures are rate limited. Never returns the secret or the expected code. \
             Needs a key whose role may verify (verifier, admin or owner).",
            schema(json!({
                "type": "object",
                "properties": {
                    "secret_id": secret_id_property(),
                    "name": name_property(),
                    "code": {"type": "string", "maxLength": MAX_CODE_CHARS, "description": "The code to check, digits only."}
                },
                "required": ["code"],
                "additionalProperties": false
            })),
        )
        .with_title("Verify a TOTP code")
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "secret_id": {"type": "string", "format": "uuid"},
                "valid": {"type": "boolean"}
            },
            "required": ["secret_id", "valid"]
        })))
        .with_annotations(
            // A valid code is consumed (a replay fails): not idempotent.
            ToolAnnotations::with_title("Verify a TOTP code")
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(false),
        ),
    ];
    if allow_delete {
        tools.push(
            Tool::new(
                DELETE,
                "Permanently delete a stored secret: no code can be generated for it afterwards and it cannot be undone. \
                 Only by secret_id (from list_totp_secrets), never by name; confirm with the user first. \
                 Returns deleted: true. Needs a key whose role may delete (admin or owner).",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "secret_id": {"type": "string", "format": "uuid", "description": "Id of the secret to delete."}
                    },
                    "required": ["secret_id"],
                    "additionalProperties": false
                })),
            )
            .with_title("Delete a TOTP secret")
            .with_raw_output_schema(schema(json!({
                "type": "object",
                "properties": {
                    "secret_id": {"type": "string", "format": "uuid"},
                    "deleted": {"type": "boolean"}
                },
                "required": ["secret_id", "deleted"]
            })))
            .with_annotations(
                ToolAnnotations::with_title("Delete a TOTP secret")
                    .read_only(false)
                    .destructive(true)
                    .idempotent(true)
                    .open_world(false),
            ),
        );
    }
    tools
}

/// A failed tool call: its text is what the model reads.
pub(crate) struct ToolError(String);

impl From<BackendError> for ToolError {
    fn from(error: BackendError) -> ToolError {
        let hint = match &error {
            BackendError::Forbidden(_) => {
                " (the API key's role or scope does not allow this; use another key or ask the vault's owner)"
            }
            BackendError::NotFound(_) => " (call list_totp_secrets for the ids this key can use)",
            _ => "",
        };
        ToolError(format!("{error}{hint}"))
    }
}

fn bad(message: impl Into<String>) -> ToolError {
    ToolError(message.into())
}

type Outcome = Result<Value, ToolError>;

/// Runs one tool. `None` when no tool has this name.
pub(crate) async fn call(
    backend: &dyn TotpBackend,
    name: &str,
    args: &JsonObject,
    allow_delete: bool,
) -> Option<CallToolResult> {
    let outcome = match name {
        LIST => list(backend, args).await,
        GET_CODE => get_code(backend, args).await,
        ADD => add(backend, args).await,
        VERIFY => verify(backend, args).await,
        DELETE if allow_delete => delete(backend, args).await,
        DELETE => Err(bad(
            "delete_totp_secret is turned off on this server (start it with --allow-delete, or --mcp-allow-delete for totpd serve); nothing was deleted",
        )),
        _ => return None,
    };
    Some(match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(ToolError(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
    })
}

/// The arguments a tool takes, checked: anything else is named back.
fn only(args: &JsonObject, allowed: &[&str]) -> Result<(), ToolError> {
    let unknown: Vec<String> = args
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .map(|key| shown_name(key))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(bad(format!(
            "unknown argument {}; this tool takes {}",
            unknown.join(", "),
            allowed.join(", ")
        )))
    }
}

/// An argument name as an error may repeat it: only if it looks like one
/// (a model may have put secret material in a key).
fn shown_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().count() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("\"{name}\"")
    } else {
        "(name not shown)".to_owned()
    }
}

fn opt_str<'a>(
    args: &'a JsonObject,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, ToolError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() > max => Err(bad(format!(
            "\"{field}\" is too long (at most {max} characters)"
        ))),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(bad(format!("\"{field}\" must be a string"))),
    }
}

fn opt_u64(args: &JsonObject, field: &str, max: u64) -> Result<Option<u64>, ToolError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(bad(format!(
                "\"{field}\" must be a whole number from 0 to {max}"
            ))),
        },
        Some(_) => Err(bad(format!("\"{field}\" must be a whole number"))),
    }
}

fn secret_id_arg(args: &JsonObject) -> Result<Option<Uuid>, ToolError> {
    opt_str(args, "secret_id", 64)?
        .map(|id| {
            Uuid::parse_str(id.trim()).map_err(|_| {
                bad("\"secret_id\" must be a secret id (a UUID) from list_totp_secrets")
            })
        })
        .transpose()
}

fn summary_json(secret: &SecretSummary) -> Value {
    json!({
        "id": secret.id,
        "label": secret.label,
        "issuer": secret.issuer,
        "type": secret.otp_type,
        "algorithm": secret.algorithm,
        "digits": secret.digits,
        "period": secret.period,
    })
}

async fn list(backend: &dyn TotpBackend, args: &JsonObject) -> Outcome {
    only(args, &["query"])?;
    let query = opt_str(args, "query", MAX_NAME_CHARS)?.filter(|q| !q.trim().is_empty());
    let (secrets, truncated) = backend.list(query.map(str::trim), LIST_LIMIT).await?;
    Ok(json!({
        "secrets": secrets.iter().map(summary_json).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

/// The secret a call names: by id, or by a name resolved to exactly one.
struct Target {
    id: Uuid,
    named: Option<SecretSummary>,
}

async fn target(backend: &dyn TotpBackend, args: &JsonObject) -> Result<Target, ToolError> {
    let id = secret_id_arg(args)?;
    let name = opt_str(args, "name", MAX_NAME_CHARS)?;
    match (id, name) {
        (Some(id), _) => Ok(Target { id, named: None }),
        (None, Some(name)) if !name.trim().is_empty() => {
            let secret = resolve(backend, name.trim()).await?;
            Ok(Target {
                id: secret.id,
                named: Some(secret),
            })
        }
        _ => Err(bad(
            "give \"secret_id\" (from list_totp_secrets) or \"name\" (a label or issuer)",
        )),
    }
}

fn describe(secret: &SecretSummary) -> String {
    match &secret.issuer {
        Some(issuer) => format!(
            "- secret_id {}: label \"{}\", issuer \"{issuer}\"",
            secret.id, secret.label
        ),
        None => format!("- secret_id {}: label \"{}\"", secret.id, secret.label),
    }
}

fn candidates(secrets: &[SecretSummary]) -> String {
    let mut text: Vec<String> = secrets.iter().take(MAX_CANDIDATES).map(describe).collect();
    if secrets.len() > MAX_CANDIDATES {
        text.push(format!("- and {} more", secrets.len() - MAX_CANDIDATES));
    }
    text.join("\n")
}

/// A name to one secret: the secrets whose label or issuer equals it
/// (case-insensitive) if any, else those that contain it; exactly one must
/// remain.
async fn resolve(backend: &dyn TotpBackend, name: &str) -> Result<SecretSummary, ToolError> {
    let (matching, _) = backend.list(Some(name), NAME_LIMIT).await?;
    let wanted = name.to_lowercase();
    let equal = |text: &str| text.to_lowercase() == wanted;
    let exact: Vec<SecretSummary> = matching
        .iter()
        .filter(|s| equal(&s.label) || s.issuer.as_deref().is_some_and(equal))
        .cloned()
        .collect();
    let pool = if exact.is_empty() { matching } else { exact };
    let mut pool = pool.into_iter();
    match (pool.next(), pool.next()) {
        (Some(only), None) => Ok(only),
        (Some(first), Some(second)) => {
            let all: Vec<SecretSummary> = [first, second].into_iter().chain(pool).collect();
            Err(bad(format!(
                "the name \"{name}\" is ambiguous: it matches {} secrets. Call again with the secret_id of the one you mean:\n{}",
                all.len(),
                candidates(&all)
            )))
        }
        (None, _) => {
            let (known, more) = backend.list(None, MAX_CANDIDATES as u32).await?;
            let list = if known.is_empty() {
                "This API key can use no secret at all.".to_owned()
            } else {
                format!(
                    "Secrets this key can use{}:\n{}",
                    if more { " (the first few)" } else { "" },
                    candidates(&known)
                )
            };
            Err(bad(format!(
                "no secret's label or issuer matches \"{name}\". {list}"
            )))
        }
    }
}

async fn get_code(backend: &dyn TotpBackend, args: &JsonObject) -> Outcome {
    only(args, &["secret_id", "name", "min_remaining"])?;
    let min_remaining = opt_u64(args, "min_remaining", MAX_MIN_REMAINING)?;
    let Target { id, named } = target(backend, args).await?;
    let code = backend.code(id, min_remaining).await?;
    let mut answer = json!({
        "secret_id": id,
        "type": if code.counter.is_some() { "hotp" } else { "totp" },
        "code": code.code,
        "digits": code.digits,
    });
    if let Value::Object(map) = &mut answer {
        if let Some(secret) = named {
            map.insert("label".into(), json!(secret.label));
            map.insert("issuer".into(), json!(secret.issuer));
        }
        for (field, value) in [
            ("expires_in", code.expires_in.map(Value::from)),
            ("expires_at", code.expires_at.map(Value::from)),
            ("period", code.period.map(Value::from)),
            ("counter", code.counter.map(Value::from)),
        ] {
            if let Some(value) = value {
                map.insert(field.into(), value);
            }
        }
    }
    Ok(answer)
}

/// The image type of a QR screenshot, from its first bytes.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.len() >= 12
        && bytes.starts_with(b"RIFF")
        && bytes.get(8..12) == Some(b"WEBP".as_slice())
    {
        Some("image/webp")
    } else {
        None
    }
}

fn decode_image(text: &str) -> Result<Vec<u8>, ToolError> {
    // Data URLs are what a model often has at hand: accept their payload.
    let payload = match text.split_once(";base64,") {
        Some((head, payload)) if head.starts_with("data:") => payload,
        _ => text,
    };
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() / 4 * 3 > MAX_IMAGE_BYTES {
        return Err(bad("\"qr_image\" is too large (at most 10 MiB)"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| bad("\"qr_image\" must be base64 (standard alphabet)"))
}

async fn add(backend: &dyn TotpBackend, args: &JsonObject) -> Outcome {
    only(args, &["uri", "secret", "label", "issuer", "qr_image"])?;
    let uri = opt_str(args, "uri", MAX_FIELD_CHARS)?;
    let secret = opt_str(args, "secret", MAX_FIELD_CHARS)?;
    let label = opt_str(args, "label", MAX_FIELD_CHARS)?;
    let issuer = opt_str(args, "issuer", MAX_FIELD_CHARS)?;
    let qr_image = opt_str(args, "qr_image", MAX_IMAGE_BYTES / 3 * 4 + 1024)?;
    let input = match (uri, secret, qr_image) {
        (Some(uri), None, None) if label.is_none() && issuer.is_none() => {
            NewSecretInput::Uri(Zeroizing::new(uri.to_owned()))
        }
        (None, Some(secret), None) => {
            let Some(label) = label.filter(|l| !l.trim().is_empty()) else {
                return Err(bad("\"label\" is required with \"secret\""));
            };
            NewSecretInput::Fields {
                secret: Zeroizing::new(secret.to_owned()),
                label: label.to_owned(),
                issuer: issuer.map(str::to_owned),
            }
        }
        (None, None, Some(image)) if label.is_none() && issuer.is_none() => {
            let bytes = decode_image(image)?;
            let Some(media_type) = image_type(&bytes) else {
                return Err(bad("\"qr_image\" is not a PNG, JPEG or WebP image"));
            };
            NewSecretInput::QrImage { bytes, media_type }
        }
        _ => {
            return Err(bad(
                "give exactly one of: \"uri\"; \"secret\" with \"label\" (and optionally \"issuer\"); or \"qr_image\"",
            ));
        }
    };
    let outcome = backend.add(input).await?;
    if outcome.secrets.is_empty() {
        let reasons: Vec<String> = outcome.skipped.iter().map(|s| s.reason.clone()).collect();
        return Err(bad(format!(
            "nothing was stored: {}",
            if reasons.is_empty() {
                "no secret found".to_owned()
            } else {
                reasons.join("; ")
            }
        )));
    }
    serde_json::to_value(&outcome).map_err(|_| bad("could not encode the answer"))
}

async fn verify(backend: &dyn TotpBackend, args: &JsonObject) -> Outcome {
    only(args, &["secret_id", "name", "code"])?;
    let Some(code) = opt_str(args, "code", MAX_CODE_CHARS)? else {
        return Err(bad("\"code\" is required"));
    };
    let Target { id, .. } = target(backend, args).await?;
    let valid = backend.verify(id, code.trim()).await?;
    Ok(json!({"secret_id": id, "valid": valid}))
}

async fn delete(backend: &dyn TotpBackend, args: &JsonObject) -> Outcome {
    only(args, &["secret_id"])?;
    let Some(id) = secret_id_arg(args)? else {
        return Err(bad(
            "\"secret_id\" is required (deletion never goes by name)",
        ));
    };
    backend.delete(id).await?;
    Ok(json!({"secret_id": id, "deleted": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delete_tool_is_listed_only_when_deletion_is_allowed() {
        let names = |allow| {
            definitions(allow)
                .into_iter()
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>()
        };
        assert!(!names(false).contains(&DELETE.to_owned()));
        assert!(names(true).contains(&DELETE.to_owned()));
    }

    #[test]
    fn image_types_are_told_by_their_magic_bytes() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"GIF89a"), None);
    }

    #[test]
    fn argument_names_that_could_be_secrets_are_not_repeated() {
        assert_eq!(shown_name("secretid"), "\"secretid\"");
        assert_eq!(shown_name("JBSWY3DP EHPK3PXP"), "(name not shown)");
    }
}
