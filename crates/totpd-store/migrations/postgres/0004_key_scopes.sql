-- totpd schema, version 4 (PostgreSQL): what roles, scoped and expiring
-- keys need. Keys made before this version keep NULL scope and expiry:
-- they see every secret and never expire.
--
-- secret_ids: the key's scope as text, the sorted secret ids (hyphenated,
-- lower case) separated by commas; NULL for every secret of the account
-- (text rather than UUID[] so both backends share the statements). The
-- keyed hash of version 3 covers it. last_used_at is written in batches
-- every few seconds, never per request.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN secret_ids TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
