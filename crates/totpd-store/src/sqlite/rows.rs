//! Rows to and from SQLite: UUIDs are 16-byte BLOBs; every other column maps
//! to its `Row` field directly.

use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};
use totpd_vault::{AccountRow, ApiKeyRow, AuditRecord, AuditRow, SecretRow};
use uuid::Uuid;

use crate::error::bad_column;
use crate::queries as q;
use crate::scope_text;

/// The UUID in column `index`.
pub(crate) fn uuid(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(index)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|_| bad_column(index, Type::Blob, "a UUID is 16 bytes"))
}

/// `id, name, created_at`
pub(crate) fn account(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: uuid(row, 0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

/// `key_id, account_id, secret_hash, role, created_at, revoked_at,
/// hash_version, name, secret_ids, expires_at, last_used_at`
pub(crate) fn api_key(row: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    let scope: Option<String> = row.get(8)?;
    Ok(ApiKeyRow {
        key_id: row.get(0)?,
        account_id: uuid(row, 1)?,
        secret_hash: row.get(2)?,
        role: row.get(3)?,
        created_at: row.get(4)?,
        revoked_at: row.get(5)?,
        hash_version: row.get(6)?,
        name: row.get(7)?,
        secret_ids: scope_text::decode(scope.as_deref())
            .map_err(|why| bad_column(8, Type::Text, why))?,
        expires_at: row.get(9)?,
        last_used_at: row.get(10)?,
    })
}

/// `id, account_id, label, issuer, algorithm, digits, period, created_at,
/// key_id, nonce, ciphertext, aad_version, otp_type, counter, skew,
/// hotp_window, last_step, failed_verifies, failed_since, fingerprint`
pub(crate) fn secret(row: &Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        id: uuid(row, 0)?,
        account_id: uuid(row, 1)?,
        label: row.get(2)?,
        issuer: row.get(3)?,
        algorithm: row.get(4)?,
        digits: row.get(5)?,
        period: row.get(6)?,
        created_at: row.get(7)?,
        sealed_by: row.get(8)?,
        nonce: row.get(9)?,
        ciphertext: row.get(10)?,
        aad_version: row.get(11)?,
        otp_type: row.get(12)?,
        counter: row.get(13)?,
        skew: row.get(14)?,
        hotp_window: row.get(15)?,
        last_step: row.get(16)?,
        failed_verifies: row.get(17)?,
        failed_since: row.get(18)?,
        fingerprint: row.get(19)?,
    })
}

pub(crate) fn insert_account(conn: &Connection, row: &AccountRow) -> rusqlite::Result<usize> {
    conn.prepare_cached(q::INSERT_ACCOUNT)?.execute(params![
        row.id.as_bytes().as_slice(),
        row.name,
        row.created_at
    ])
}

pub(crate) fn insert_api_key(conn: &Connection, row: &ApiKeyRow) -> rusqlite::Result<usize> {
    conn.prepare_cached(q::INSERT_API_KEY)?.execute(params![
        row.key_id,
        row.account_id.as_bytes().as_slice(),
        row.secret_hash,
        row.role,
        row.created_at,
        row.revoked_at,
        row.hash_version,
        row.name,
        scope_text::encode(row.secret_ids.as_deref()),
        row.expires_at,
        row.last_used_at
    ])
}

pub(crate) fn insert_secret(conn: &Connection, row: &SecretRow) -> rusqlite::Result<usize> {
    conn.prepare_cached(q::INSERT_SECRET)?.execute(params![
        row.id.as_bytes().as_slice(),
        row.account_id.as_bytes().as_slice(),
        row.label,
        row.issuer,
        row.algorithm,
        row.digits,
        row.period,
        row.created_at,
        row.sealed_by,
        row.nonce,
        row.ciphertext,
        row.aad_version,
        row.otp_type,
        row.counter,
        row.skew,
        row.hotp_window,
        row.last_step,
        row.failed_verifies,
        row.failed_since,
        row.fingerprint
    ])
}

/// The UUID in column `index`, or `None` for NULL.
fn optional_uuid(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Uuid>> {
    match row.get_ref(index)?.as_blob_or_null()? {
        None => Ok(None),
        Some(bytes) => Uuid::from_slice(bytes)
            .map(Some)
            .map_err(|_| bad_column(index, Type::Blob, "a UUID is 16 bytes")),
    }
}

/// `id, at, account_id, action, outcome, key_id, role, secret_id,
/// remote_addr, user_agent, request_id`
pub(crate) fn audit(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: row.get(0)?,
        record: AuditRecord {
            at: row.get(1)?,
            account_id: optional_uuid(row, 2)?,
            action: row.get(3)?,
            outcome: row.get(4)?,
            key_id: row.get(5)?,
            role: row.get(6)?,
            secret_id: optional_uuid(row, 7)?,
            remote_addr: row.get(8)?,
            user_agent: row.get(9)?,
            request_id: row.get(10)?,
        },
    })
}

/// Appends one audit event (the database picks its id).
pub(crate) fn insert_audit(conn: &Connection, r: &AuditRecord) -> rusqlite::Result<usize> {
    conn.prepare_cached(q::INSERT_AUDIT)?.execute(params![
        r.at,
        r.account_id.as_ref().map(|id| id.as_bytes().as_slice()),
        r.action,
        r.outcome,
        r.key_id,
        r.role,
        r.secret_id.as_ref().map(|id| id.as_bytes().as_slice()),
        r.remote_addr,
        r.user_agent,
        r.request_id
    ])
}

/// Inserts one audit event with its id (for copies).
pub(crate) fn copy_audit(conn: &Connection, row: &AuditRow) -> rusqlite::Result<usize> {
    let r = &row.record;
    conn.prepare_cached(q::COPY_AUDIT)?.execute(params![
        row.id,
        r.at,
        r.account_id.as_ref().map(|id| id.as_bytes().as_slice()),
        r.action,
        r.outcome,
        r.key_id,
        r.role,
        r.secret_id.as_ref().map(|id| id.as_bytes().as_slice()),
        r.remote_addr,
        r.user_agent,
        r.request_id
    ])
}
