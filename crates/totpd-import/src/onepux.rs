//! 1Password's unencrypted export, `.1pux`.
//!
//! A 1PUX file is a zip archive holding `export.attributes`, `export.data`
//! and a `files/` folder of attachments (1Password support, "About the
//! 1Password Unencrypted Export format"). `export.data` is JSON:
//! `{"accounts": [{"attrs", "vaults": [{"attrs", "items": [...]}]}]}`. Each
//! item has an `overview` (`title`, `url`, ...) and `details` with
//! `loginFields` (the username is the one whose `designation` is
//! `username`) and `sections[].fields[]`; a one-time password field's
//! `value` is `{"totp": "..."}`, an `otpauth://` URI or a bare base32
//! secret. Items without such a field are not credentials and are skipped;
//! an item with several gives one entry for each. Older exports wrap each
//! item in `{"item": {...}}`, which is read the same.
//!
//! The item's title stands for the issuer and its username for the account
//! name when the field holds a bare secret or a URI without them, as the
//! title is what 1Password shows next to the code.
//!
//! The archive is bounded before anything is inflated: members by
//! [`Limits::max_archive_members`], as the archive's end record declares
//! them and as they are listed, and `export.data` is read through a
//! [`Read::take`] of [`Limits::max_archive_bytes`] whatever size the archive
//! declares for it, so a zip bomb stops at the bound.

use std::io::{Cursor, Read};

use serde_json::Value;
use zeroize::Zeroizing;

use crate::entry::from_uri_or_secret;
use crate::{Entry, Format, ImportError, Limits, check_count};

const FORMAT: Format = Format::OnePux;
const EXPORT_DATA: &str = "export.data";

/// Reads a 1PUX archive.
pub(crate) fn read(data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    if !data.starts_with(LOCAL_HEADER) {
        return Err(ImportError::malformed(FORMAT, "it is not a zip archive"));
    }
    if let Some(end) = end_record(data) {
        // The zip reader lists as many members as the end record declares,
        // so check the declaration before it allocates for them. 0xFFFF
        // means the count is in a zip64 record: checked after listing.
        if end.members != u16::MAX && usize::from(end.members) > limits.max_archive_members {
            return Err(too_many_members(usize::from(end.members), limits));
        }
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(data))
        .map_err(|_| ImportError::malformed(FORMAT, "the zip archive cannot be read"))?;
    if archive.len() > limits.max_archive_members {
        return Err(too_many_members(archive.len(), limits));
    }
    let file = archive.by_name(EXPORT_DATA).map_err(|error| match error {
        zip::result::ZipError::FileNotFound => {
            ImportError::malformed(FORMAT, "the archive has no export.data")
        }
        _ => ImportError::malformed(FORMAT, "export.data cannot be read from the archive"),
    })?;
    // The text holds every secret of the account: zeroized when dropped.
    let mut text = Zeroizing::new(Vec::new());
    file.take(limits.max_archive_bytes.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|_| ImportError::malformed(FORMAT, "export.data does not decompress"))?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > limits.max_archive_bytes {
        return Err(ImportError::ArchiveTooLarge {
            reason: format!(
                "export.data inflates to more than {} bytes",
                limits.max_archive_bytes
            ),
        });
    }
    let json: Value = serde_json::from_slice(crate::trim_text_start(&text)).map_err(|error| {
        ImportError::malformed(
            FORMAT,
            format!(
                "export.data is not JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    let accounts = json
        .get("accounts")
        .and_then(Value::as_array)
        .ok_or_else(|| ImportError::malformed(FORMAT, "export.data has no accounts list"))?;
    let mut entries = Vec::new();
    let vaults = accounts
        .iter()
        .filter_map(|account| account.get("vaults").and_then(Value::as_array))
        .flatten();
    let items = vaults
        .filter_map(|vault| vault.get("items").and_then(Value::as_array))
        .flatten();
    for item in items {
        // Older exports: `{"item": {...}}`.
        let item = item
            .get("item")
            .filter(|inner| inner.is_object())
            .unwrap_or(item);
        push_item(item, &mut entries);
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

/// Whether `data` is a zip archive whose central directory names
/// `export.data`. Cheap: the end record is found in the archive's last
/// 64 KiB and the directory is searched for the name, nothing is inflated.
pub(crate) fn sniff(data: &[u8]) -> bool {
    if !data.starts_with(LOCAL_HEADER) {
        return false;
    }
    let Some(end) = end_record(data) else {
        return false;
    };
    let start = usize::try_from(end.directory_offset).unwrap_or(usize::MAX);
    let size = usize::try_from(end.directory_size).unwrap_or(usize::MAX);
    start
        .checked_add(size)
        .and_then(|stop| data.get(start..stop))
        .is_some_and(|directory| {
            directory
                .windows(EXPORT_DATA.len())
                .any(|window| window == EXPORT_DATA.as_bytes())
        })
}

/// The entries of one item's one-time password fields, in their order.
fn push_item(item: &Value, entries: &mut Vec<Entry>) {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let title = text(item.pointer("/overview/title"));
    let username = item
        .pointer("/details/loginFields")
        .and_then(Value::as_array)
        .and_then(|fields| {
            fields
                .iter()
                .find(|field| field.get("designation").and_then(Value::as_str) == Some("username"))
        })
        .and_then(|field| text(field.get("value")));
    let sections = item
        .pointer("/details/sections")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let fields = sections
        .iter()
        .filter_map(|section| section.get("fields").and_then(Value::as_array))
        .flatten();
    for field in fields {
        let Some(totp) = field.pointer("/value/totp").and_then(Value::as_str) else {
            continue;
        };
        if totp.trim().is_empty() {
            continue;
        }
        entries.push(from_uri_or_secret(totp, username.clone(), title.clone()));
    }
}

fn too_many_members(count: usize, limits: &Limits) -> ImportError {
    ImportError::ArchiveTooLarge {
        reason: format!("{count} members, more than {}", limits.max_archive_members),
    }
}

/// A zip local file header's signature (APPNOTE.TXT §4.3.7).
const LOCAL_HEADER: &[u8] = b"PK\x03\x04";
/// The end of central directory record's signature (APPNOTE.TXT §4.3.16).
const END_RECORD: &[u8] = b"PK\x05\x06";
/// The end record's fixed size; a comment of up to 65,535 bytes follows.
const END_RECORD_LEN: usize = 22;

/// What the end of central directory record declares.
struct EndRecord {
    members: u16,
    directory_size: u32,
    directory_offset: u32,
}

/// The last end record in the archive's tail (APPNOTE.TXT §4.3.16: total
/// entries at offset 10, directory size at 12, its offset at 16).
fn end_record(data: &[u8]) -> Option<EndRecord> {
    let tail_start = data
        .len()
        .saturating_sub(END_RECORD_LEN + usize::from(u16::MAX));
    let tail = data.get(tail_start..)?;
    let at = tail
        .windows(END_RECORD.len())
        .rposition(|window| window == END_RECORD)?;
    let record = tail.get(at..at.checked_add(END_RECORD_LEN)?)?;
    let u16_at = |offset: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            record.get(offset..offset + 2)?.try_into().ok()?,
        ))
    };
    let u32_at = |offset: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            record.get(offset..offset + 4)?.try_into().ok()?,
        ))
    };
    Some(EndRecord {
        members: u16_at(10)?,
        directory_size: u32_at(12)?,
        directory_offset: u32_at(16)?,
    })
}
