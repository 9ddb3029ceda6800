-- totpd schema, version 2 (PostgreSQL): the per-account secret count that
-- the secret quota checks. Kept by statement-level triggers (one update of
-- each account row per statement, however many rows it inserts or
-- deletes), so every path that adds or removes secrets keeps it exact; a
-- create locks its account's row, which serialises the check and the
-- insert of creates into one account. Copies into an empty database turn
-- the insert trigger off and count once at the end.
-- (The list order already has its index: secrets_by_account.)
ALTER TABLE accounts ADD COLUMN secret_count BIGINT NOT NULL DEFAULT 0;

UPDATE accounts a
SET secret_count = (SELECT COUNT(*) FROM secrets s WHERE s.account_id = a.id);

CREATE FUNCTION totpd_count_inserted_secrets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET secret_count = a.secret_count + n.added
    FROM (SELECT account_id, COUNT(*) AS added FROM inserted GROUP BY account_id) n
    WHERE a.id = n.account_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION totpd_count_deleted_secrets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts a SET secret_count = a.secret_count - n.removed
    FROM (SELECT account_id, COUNT(*) AS removed FROM deleted GROUP BY account_id) n
    WHERE a.id = n.account_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER secrets_count_insert AFTER INSERT ON secrets
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION totpd_count_inserted_secrets();

CREATE TRIGGER secrets_count_delete AFTER DELETE ON secrets
REFERENCING OLD TABLE AS deleted
FOR EACH STATEMENT EXECUTE FUNCTION totpd_count_deleted_secrets();
