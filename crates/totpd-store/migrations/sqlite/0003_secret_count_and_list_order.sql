-- totpd schema, version 2 (SQLite): what the per-account secret quota and
-- the streamed list need.
--
-- accounts.secret_count is kept by triggers, so every path that adds or
-- removes a secret (the API, copies, a hand-made DELETE) keeps it exact, and
-- a create checks the quota with one row read instead of counting rows.
ALTER TABLE accounts ADD COLUMN secret_count INTEGER NOT NULL DEFAULT 0;

UPDATE accounts
SET secret_count = (SELECT COUNT(*) FROM secrets WHERE secrets.account_id = accounts.id);

CREATE TRIGGER secrets_count_insert AFTER INSERT ON secrets
BEGIN
    UPDATE accounts SET secret_count = secret_count + 1 WHERE id = NEW.account_id;
END;

CREATE TRIGGER secrets_count_delete AFTER DELETE ON secrets
BEGIN
    UPDATE accounts SET secret_count = secret_count - 1 WHERE id = OLD.account_id;
END;

CREATE TRIGGER secrets_count_move AFTER UPDATE OF account_id ON secrets
WHEN NEW.account_id IS NOT OLD.account_id
BEGIN
    UPDATE accounts SET secret_count = secret_count - 1 WHERE id = OLD.account_id;
    UPDATE accounts SET secret_count = secret_count + 1 WHERE id = NEW.account_id;
END;

-- The list's order, so a list is read page by page, each page a range of
-- this index (entries hold the primary key, so each row is one descent).
CREATE INDEX secrets_in_list_order ON secrets (account_id, created_at, id);
