//! SQL text that both backends run unchanged.
//!
//! PostgreSQL numbers its parameters (`$1`, `$2`, ...). SQLite treats `$1` as
//! a *named* parameter and numbers parameters in order of first appearance,
//! so binding positionally works only while every statement here introduces
//! `$1`, `$2`, ... in that order; `sqlite::tests` checks each one. Statements
//! only one backend runs live in that backend's module (SQLite's use `?N`).

/// Whether the database answers.
pub(crate) const PING: &str = "SELECT 1";

/// A `meta` value by name.
pub(crate) const GET_META: &str = "SELECT value FROM meta WHERE name = $1";

/// Inserts a `meta` value unless the name exists (one row changed if inserted).
pub(crate) const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

/// Inserts a `meta` value; an existing name is an error (for copies).
pub(crate) const INSERT_META: &str = "INSERT INTO meta (name, value) VALUES ($1, $2)";

/// An account by name.
pub(crate) const ACCOUNT_BY_NAME: &str =
    "SELECT id, name, created_at FROM accounts WHERE name = $1";

/// Inserts an account unless the name exists; the caller then reads the row
/// back by name, so a concurrent creator's row wins.
pub(crate) const INSERT_ACCOUNT_IF_ABSENT: &str = "INSERT INTO accounts (id, name, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";

/// Inserts an account; an existing id or name is an error (for copies).
pub(crate) const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)";

/// Number of accounts.
pub(crate) const COUNT_ACCOUNTS: &str = "SELECT COUNT(*) FROM accounts";

/// Inserts an API key.
pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys \
     (key_id, account_id, secret_hash, role, created_at, revoked_at, hash_version, name, \
     secret_ids, expires_at, last_used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// An API key by id, revoked or not.
pub(crate) const API_KEY: &str = "SELECT key_id, account_id, secret_hash, role, created_at, \
     revoked_at, hash_version, name, secret_ids, expires_at, last_used_at \
     FROM api_keys WHERE key_id = $1";

/// Every API key with its account's name, oldest first.
pub(crate) const LIST_API_KEYS: &str = "SELECT k.key_id, k.account_id, k.secret_hash, k.role, \
     k.created_at, k.revoked_at, k.hash_version, k.name, k.secret_ids, k.expires_at, \
     k.last_used_at, a.name \
     FROM api_keys k JOIN accounts a ON a.id = k.account_id \
     ORDER BY k.created_at, k.key_id";

/// Revokes a key that is not revoked yet (one row changed if it was).
pub(crate) const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL";

/// Rewrites an unrevoked key's hash under a newer version, only while the
/// row still holds the hash, version, account and role it was verified
/// against, and neither scope nor expiry, as every row of an older version
/// does (one row changed if it did).
pub(crate) const UPGRADE_API_KEY_HASH: &str = "UPDATE api_keys SET secret_hash = $1, hash_version = $2 \
     WHERE key_id = $3 AND secret_hash = $4 AND hash_version = $5 AND account_id = $6 \
     AND role = $7 AND revoked_at IS NULL AND secret_ids IS NULL AND expires_at IS NULL";

/// Moves one key's `last_used_at` forward to `$1` (never back).
pub(crate) const RECORD_API_KEY_USE: &str = "UPDATE api_keys SET last_used_at = $1 \
     WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";

/// Inserts a secret.
pub(crate) const INSERT_SECRET: &str = "INSERT INTO secrets \
     (id, account_id, label, issuer, algorithm, digits, period, created_at, sealed_by, nonce, \
     ciphertext, aad_version, otp_type, counter, skew, hotp_window, last_step, failed_verifies, \
     failed_since, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17, $18, $19, $20)";

/// One of an account's secrets. Scoping by account is part of the key: another
/// account's id finds nothing.
pub(crate) const SECRET: &str = "SELECT id, account_id, label, issuer, algorithm, digits, \
     period, created_at, sealed_by, nonce, ciphertext, aad_version, \
     otp_type, counter, skew, hotp_window, last_step, failed_verifies, failed_since, fingerprint FROM secrets \
     WHERE id = $1 AND account_id = $2";

/// A secret of account `$1` whose fingerprint is `$2` (the partial index
/// `secrets_by_fingerprint`).
pub(crate) const SECRET_BY_FINGERPRINT: &str =
    "SELECT id FROM secrets WHERE account_id = $1 AND fingerprint = $2 LIMIT 1";

/// Sets a secret's fingerprint only where it has none.
pub(crate) const SET_FINGERPRINT: &str = "UPDATE secrets SET fingerprint = $1 \
     WHERE id = $2 AND account_id = $3 AND fingerprint IS NULL";

/// How many secrets an account holds (kept by triggers), for the quota.
pub(crate) const SECRET_COUNT: &str = "SELECT secret_count FROM accounts WHERE id = $1";

/// The first page of an account's secrets in list order: `created_at`,
/// then `id`. Two statements rather than one with `$2 IS NULL OR ...`, for
/// the reason given at `DUMP_SECRETS_FIRST`.
pub(crate) const LIST_SECRETS_FIRST: &str = "SELECT id, account_id, label, issuer, algorithm, \
     digits, period, created_at, sealed_by, nonce, ciphertext, aad_version, \
     otp_type, counter, skew, hotp_window, last_step, failed_verifies, failed_since, fingerprint FROM secrets \
     WHERE account_id = $1 ORDER BY created_at, id LIMIT $2";

/// The next page of an account's secrets: those after (`$2`, `$3`) in list
/// order, a range of the list-order index on both databases.
pub(crate) const LIST_SECRETS_AFTER: &str = "SELECT id, account_id, label, issuer, algorithm, \
     digits, period, created_at, sealed_by, nonce, ciphertext, aad_version, \
     otp_type, counter, skew, hotp_window, last_step, failed_verifies, failed_since, fingerprint FROM secrets \
     WHERE account_id = $1 AND (created_at, id) > ($2, $3) \
     ORDER BY created_at, id LIMIT $4";

/// Changes one of an account's secrets' settings in one statement and
/// returns the row as it now is (no row if it does not exist): `$1` is the
/// new label, or NULL to keep it; `$2` says whether to set the issuer to
/// `$3` (NULL clears it); `$4` is the new TOTP skew, or NULL to keep it;
/// `$5` and `$6` are the id and account. None of these is bound into the
/// ciphertext's associated data, so the ciphertext is untouched. (SQLite
/// numbers `$N` parameters in order of appearance, so they appear here in
/// order.)
pub(crate) const UPDATE_SECRET_LABELS: &str = "UPDATE secrets \
     SET label = COALESCE($1, label), issuer = CASE WHEN $2 THEN $3 ELSE issuer END, \
     skew = COALESCE($4, skew) \
     WHERE id = $5 AND account_id = $6 \
     RETURNING id, account_id, label, issuer, algorithm, digits, period, created_at, sealed_by, \
     nonce, ciphertext, aad_version, otp_type, counter, skew, hotp_window, last_step, \
     failed_verifies, failed_since, fingerprint";

/// Deletes one of an account's secrets (one row changed if it existed).
pub(crate) const DELETE_SECRET: &str = "DELETE FROM secrets WHERE id = $1 AND account_id = $2";

/// HOTP: hands out the stored counter and advances it, in one statement,
/// so concurrent callers on any node each get their own counter. A counter
/// at the largest BIGINT stays there (no row, so no code).
pub(crate) const TAKE_HOTP_COUNTER: &str = "UPDATE secrets SET counter = counter + 1 \
     WHERE id = $1 AND account_id = $2 AND otp_type = 'hotp' \
     AND counter < 9223372036854775807 RETURNING counter - 1";

/// TOTP: accepts step `$1` only if neither it nor a later step was accepted
/// (compare-and-set; one row changed if this call won).
pub(crate) const ACCEPT_TOTP_STEP: &str = "UPDATE secrets SET last_step = $1 \
     WHERE id = $2 AND account_id = $3 AND otp_type = 'totp' \
     AND (last_step IS NULL OR last_step < $1)";

/// HOTP: moves the counter past the matched counter `$1` only while it has
/// not moved past it already (compare-and-set; one row changed if won).
pub(crate) const ACCEPT_HOTP_COUNTER: &str = "UPDATE secrets SET counter = $1 + 1 \
     WHERE id = $2 AND account_id = $3 AND otp_type = 'hotp' AND counter <= $1";

/// Counts a failed verification at `$1` (Unix ms) in a window of `$2` ms:
/// a window that has passed (or none) starts again at `$1`. Every `SET`
/// expression reads the row as it was, on both databases.
pub(crate) const RECORD_VERIFY_FAILURE: &str = "UPDATE secrets SET \
     failed_verifies = CASE WHEN failed_since IS NULL OR failed_since <= $1 - $2 THEN 1 \
     ELSE failed_verifies + 1 END, \
     failed_since = CASE WHEN failed_since IS NULL OR failed_since <= $1 - $2 THEN $1 \
     ELSE failed_since END \
     WHERE id = $3 AND account_id = $4 RETURNING failed_verifies, failed_since";

/// Every `meta` row, by name.
pub(crate) const DUMP_META: &str = "SELECT name, value FROM meta ORDER BY name";

/// Every account, by id.
pub(crate) const DUMP_ACCOUNTS: &str = "SELECT id, name, created_at FROM accounts ORDER BY id";

/// Every API key, by key id.
pub(crate) const DUMP_API_KEYS: &str = "SELECT key_id, account_id, secret_hash, role, \
     created_at, revoked_at, hash_version, name, secret_ids, expires_at, last_used_at \
     FROM api_keys ORDER BY key_id";

/// The first page of all secrets, by id. Two statements rather than one with
/// `$1 IS NULL OR id > $1`, which neither planner turns into an index range:
/// every page would rescan the rows before it.
pub(crate) const DUMP_SECRETS_FIRST: &str = "SELECT id, account_id, label, issuer, algorithm, \
     digits, period, created_at, sealed_by, nonce, ciphertext, aad_version, \
     otp_type, counter, skew, hotp_window, last_step, failed_verifies, failed_since, fingerprint FROM secrets \
     ORDER BY id LIMIT $1";

/// The next page of all secrets: ids above `$1`, by id.
pub(crate) const DUMP_SECRETS_AFTER: &str = "SELECT id, account_id, label, issuer, algorithm, \
     digits, period, created_at, sealed_by, nonce, ciphertext, aad_version, \
     otp_type, counter, skew, hotp_window, last_step, failed_verifies, failed_since, fingerprint FROM secrets \
     WHERE id > $1 ORDER BY id LIMIT $2";

/// The columns of an `audit_events` row, in the order every audit read
/// returns them.
pub(crate) const AUDIT_COLUMNS: &str = "id, at, account_id, action, outcome, key_id, role, \
     secret_id, remote_addr, user_agent, request_id";

/// Appends an audit event (its id comes from the database).
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (at, account_id, action, outcome, key_id, role, secret_id, remote_addr, user_agent, \
     request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Inserts an audit event with its id (for copies).
pub(crate) const COPY_AUDIT: &str = "INSERT INTO audit_events \
     (id, at, account_id, action, outcome, key_id, role, secret_id, remote_addr, user_agent, \
     request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The first page of all audit events, by id.
pub(crate) const DUMP_AUDIT_FIRST: &str = "SELECT id, at, account_id, action, outcome, key_id, \
     role, secret_id, remote_addr, user_agent, request_id FROM audit_events ORDER BY id LIMIT $1";

/// The next page of all audit events: ids above `$1`, by id.
pub(crate) const DUMP_AUDIT_AFTER: &str = "SELECT id, at, account_id, action, outcome, key_id, \
     role, secret_id, remote_addr, user_agent, request_id FROM audit_events \
     WHERE id > $1 ORDER BY id LIMIT $2";

/// Deletes up to `$2` audit events older than `$1`, oldest first (a range
/// of the time index; nothing to delete costs one probe).
pub(crate) const PRUNE_AUDIT: &str = "DELETE FROM audit_events WHERE id IN \
     (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)";

/// A value bound to a statement built by [`audit_query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuditParam {
    /// A UUID column.
    Uuid(uuid::Uuid),
    /// A text column.
    Text(String),
    /// An integer column.
    Int(i64),
}

/// The statement of one page of audit events and its parameters, in `$N`
/// order: one text per combination of filters (rather than `$N IS NULL OR
/// ...`, which keeps both planners from using the filters' indexes), with
/// the page size in the text, as SQLite wants (see `with_literal_limit`).
pub(crate) fn audit_query(
    account_id: Option<uuid::Uuid>,
    query: &totpd_vault::AuditQuery,
) -> (String, Vec<AuditParam>) {
    use totpd_vault::AuditPage;
    let mut params = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let mut bind = |condition: &str, param: AuditParam, conditions: &mut Vec<String>| {
        params.push(param);
        conditions.push(format!("{condition} ${}", params.len()));
    };
    if let Some(account) = account_id {
        bind("account_id =", AuditParam::Uuid(account), &mut conditions);
    }
    if let Some(action) = &query.action {
        bind(
            "action =",
            AuditParam::Text(action.clone()),
            &mut conditions,
        );
    }
    if let Some(secret) = query.secret_id {
        bind("secret_id =", AuditParam::Uuid(secret), &mut conditions);
    }
    if let Some(key) = &query.key_id {
        bind("key_id =", AuditParam::Text(key.clone()), &mut conditions);
    }
    if let Some(since) = query.since {
        bind("at >=", AuditParam::Int(since), &mut conditions);
    }
    if let Some(until) = query.until {
        bind("at <", AuditParam::Int(until), &mut conditions);
    }
    let order = match query.page {
        AuditPage::Newest => "DESC",
        AuditPage::Before(id) => {
            bind("id <", AuditParam::Int(id), &mut conditions);
            "DESC"
        }
        AuditPage::After(id) => {
            bind("id >", AuditParam::Int(id), &mut conditions);
            "ASC"
        }
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_events{filter} ORDER BY id {order} LIMIT {}",
        query.limit
    );
    (sql, params)
}

/// Re-seals a secret (`totpd rekey`), only while the row still holds the
/// ciphertext, nonce, sealing key id, associated-data version and OTP parameters
/// that were read (one row changed if it did).
pub(crate) const RESEAL_SECRET: &str = "UPDATE secrets SET sealed_by = $1, nonce = $2, \
     ciphertext = $3, aad_version = $4 WHERE id = $5 AND account_id = $6 AND sealed_by = $7 \
     AND nonce = $8 AND ciphertext = $9 AND aad_version = $10 AND algorithm = $11 \
     AND digits = $12 AND period = $13";

/// Replaces a `meta` value while it still holds the one that was read.
pub(crate) const REPLACE_META: &str = "UPDATE meta SET value = $1 WHERE name = $2 AND value = $3";

/// Secrets per sealing key and associated-data version.
pub(crate) const COUNT_SECRETS_BY_SEAL: &str = "SELECT sealed_by, aad_version, COUNT(*) \
     FROM secrets GROUP BY sealed_by, aad_version ORDER BY sealed_by, aad_version";

/// API keys per hash version.
pub(crate) const COUNT_API_KEYS_BY_HASH: &str = "SELECT hash_version, COUNT(*) FROM api_keys \
     GROUP BY hash_version ORDER BY hash_version";

/// Rows per page when copying secrets between databases.
pub(crate) const COPY_PAGE: u32 = 1000;

/// Every statement above that takes parameters, for the check that SQLite
/// numbers them as PostgreSQL does.
#[cfg(test)]
pub(crate) const WITH_PARAMETERS: &[&str] = &[
    GET_META,
    INSERT_META_IF_ABSENT,
    INSERT_META,
    ACCOUNT_BY_NAME,
    INSERT_ACCOUNT_IF_ABSENT,
    INSERT_ACCOUNT,
    INSERT_API_KEY,
    API_KEY,
    REVOKE_API_KEY,
    UPGRADE_API_KEY_HASH,
    RECORD_API_KEY_USE,
    INSERT_SECRET,
    SECRET_BY_FINGERPRINT,
    SET_FINGERPRINT,
    SECRET,
    DELETE_SECRET,
    TAKE_HOTP_COUNTER,
    ACCEPT_TOTP_STEP,
    ACCEPT_HOTP_COUNTER,
    RECORD_VERIFY_FAILURE,
    SECRET_COUNT,
    LIST_SECRETS_FIRST,
    LIST_SECRETS_AFTER,
    DUMP_SECRETS_FIRST,
    DUMP_SECRETS_AFTER,
    INSERT_AUDIT,
    COPY_AUDIT,
    DUMP_AUDIT_FIRST,
    DUMP_AUDIT_AFTER,
    PRUNE_AUDIT,
    RESEAL_SECRET,
    REPLACE_META,
];
