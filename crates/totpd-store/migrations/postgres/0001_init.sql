-- totpd schema, version 1 (PostgreSQL).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE accounts (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    secret_hash BYTEA NOT NULL,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE secrets (
    id         UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id),
    label      TEXT NOT NULL,
    issuer     TEXT,
    algorithm  TEXT NOT NULL,
    digits     BIGINT NOT NULL,
    period     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL
);

CREATE INDEX secrets_by_account ON secrets (account_id, created_at, id);
