-- totpd schema, version 6: the id of the master key that sealed a secret is
-- `secrets.sealed_by`, so that `key_id` names an API key wherever it
-- appears. A rename only: every row keeps its value, and no index, trigger
-- or constraint names the column.
ALTER TABLE secrets RENAME COLUMN key_id TO sealed_by;
