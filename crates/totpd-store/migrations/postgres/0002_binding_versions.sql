-- totpd schema, version 2 (PostgreSQL): versions of what binds a row.
--
-- api_keys.hash_version: which keyed hash `secret_hash` is. 1 (every row
-- written before this step) covers the key id and secret only; 2 also
-- covers the account and role, so a row moved to another account or given
-- another role no longer authenticates. Version-1 rows are rewritten to
-- version 2 on their first successful use.
--
-- secrets.aad_version: which associated data sealed `ciphertext`. 1 (every
-- row written before this step) binds the account and secret id; 2 also
-- binds the OTP type, algorithm, digits and period, so a changed parameter
-- makes the row fail to open instead of yielding other codes.
--
-- Adding a column with a constant default rewrites no row (PostgreSQL 11+
-- stores the default in the catalogue).
ALTER TABLE api_keys ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE secrets ADD COLUMN aad_version BIGINT NOT NULL DEFAULT 1;
