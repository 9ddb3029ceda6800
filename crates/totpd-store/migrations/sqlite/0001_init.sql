-- totpd schema, version 1 (SQLite).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE accounts (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    secret_hash BLOB NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) WITHOUT ROWID;

CREATE TABLE secrets (
    id         BLOB PRIMARY KEY,
    account_id BLOB NOT NULL REFERENCES accounts (id),
    label      TEXT NOT NULL,
    issuer     TEXT,
    algorithm  TEXT NOT NULL,
    digits     INTEGER NOT NULL,
    period     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL
) WITHOUT ROWID;

CREATE INDEX secrets_by_account ON secrets (account_id, created_at, id);
