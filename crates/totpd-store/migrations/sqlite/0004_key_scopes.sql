-- totpd schema, version 4 (SQLite): what roles, scoped and expiring keys
-- need. Keys made before this version keep NULL scope and expiry: they see
-- every secret and never expire.
--
-- secret_ids: the key's scope as text, the sorted secret ids (hyphenated,
-- lower case) separated by commas; NULL for every secret of the account.
-- The keyed hash of version 3 covers it, with the name-less fields below.
-- last_used_at is written in batches every few seconds, never per request.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN secret_ids TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
