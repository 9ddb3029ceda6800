-- totpd schema, version 5 (SQLite): the audit log.
--
-- One row per recorded operation: who (key id, role, account), what
-- (action, outcome, secret id), from where (address, user agent, request
-- id) and when (Unix milliseconds). Never a code, a secret or a key secret.
-- AUTOINCREMENT: ids only grow, even after retention has deleted every row,
-- so a reader that follows the log by id never misses or repeats one.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    account_id  BLOB,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    key_id      TEXT,
    role        TEXT,
    secret_id   BLOB,
    remote_addr TEXT,
    user_agent  TEXT,
    request_id  TEXT
);

-- Newest-first pages of one account, without and with each filter.
CREATE INDEX audit_events_by_account ON audit_events (account_id, id);
CREATE INDEX audit_events_by_action ON audit_events (account_id, action, id);
CREATE INDEX audit_events_by_secret ON audit_events (account_id, secret_id, id);
CREATE INDEX audit_events_by_key ON audit_events (account_id, key_id, id);
-- Retention deletes the oldest rows; with nothing to delete it is one probe.
CREATE INDEX audit_events_by_time ON audit_events (at);
