-- totpd schema, version 1 (SQLite).
--
-- Ids are UUIDs stored as 16-byte BLOBs; times are Unix milliseconds. STRICT
-- tables refuse a value of the wrong type instead of storing it anyway.

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE accounts (
    id         BLOB PRIMARY KEY CHECK (length(id) = 16),
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    secret_hash BLOB NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT, WITHOUT ROWID;

-- Clustered by account: every query names the account, so a code lookup is
-- one descent of this B-tree, and listing an account's secrets reads its
-- rows side by side instead of one random page per secret (the list is
-- sorted by creation time after reading).
--
-- Secret ids are also unique across accounts, as in PostgreSQL, and copies
-- page through every secret in id order. UNIQUE (id) is declared *before*
-- the primary key on purpose: for a lookup by equality on every column of a
-- unique index, SQLite's planner takes the first such index it finds, and
-- it finds the later-declared one first. This way a lookup by (id, account)
-- uses the primary key, not the id index plus a second descent.
CREATE TABLE secrets (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    id         BLOB NOT NULL CHECK (length(id) = 16),
    label      TEXT NOT NULL,
    issuer     TEXT,
    algorithm  TEXT NOT NULL,
    digits     INTEGER NOT NULL,
    period     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    UNIQUE (id),
    PRIMARY KEY (account_id, id)
) STRICT, WITHOUT ROWID;
