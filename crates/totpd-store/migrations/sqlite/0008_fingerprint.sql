-- totpd schema, version 8 (SQLite): a keyed fingerprint of each secret's
-- key bytes, so an import can tell a secret the account already holds.
--
-- fingerprint  HMAC-SHA-256 under a key derived from the pepper (which the
--              master key seals), over the account id and the key bytes:
--              it reveals nothing of the secret, and equal secrets of two
--              accounts do not look alike. NULL for rows written before
--              version 8 until the vault computes it (the first import
--              into their account does).
ALTER TABLE secrets ADD COLUMN fingerprint BLOB;
CREATE INDEX secrets_by_fingerprint ON secrets (account_id, fingerprint)
    WHERE fingerprint IS NOT NULL;
