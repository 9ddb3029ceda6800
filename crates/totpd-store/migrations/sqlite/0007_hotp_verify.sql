-- totpd schema, version 7 (SQLite): HOTP secrets and verification state.
--
-- Every row gets a type; existing rows are TOTP with a skew of one step,
-- which is what they always were. The verification state lives in the
-- row itself, so every node sees the same state and each change is one
-- conditional UPDATE (compare-and-set), never a read and a later write:
--   counter        HOTP: the counter of the next code to hand out.
--   skew           TOTP: steps accepted either side of the current one (0..=2).
--   hotp_window    HOTP: counters looked ahead by a verification.
--   last_step      TOTP: the last accepted time step (RFC 6238 §5.2); it and
--                  every earlier step are refused afterwards.
--   failed_verifies, failed_since: failed verifications counted since
--                  failed_since (Unix ms), the start of the throttling window.
ALTER TABLE secrets ADD COLUMN otp_type TEXT NOT NULL DEFAULT 'totp'
    CHECK (otp_type IN ('totp', 'hotp'));
ALTER TABLE secrets ADD COLUMN counter INTEGER NOT NULL DEFAULT 0 CHECK (counter >= 0);
ALTER TABLE secrets ADD COLUMN skew INTEGER NOT NULL DEFAULT 1 CHECK (skew BETWEEN 0 AND 2);
ALTER TABLE secrets ADD COLUMN hotp_window INTEGER NOT NULL DEFAULT 10
    CHECK (hotp_window BETWEEN 1 AND 100);
ALTER TABLE secrets ADD COLUMN last_step INTEGER;
ALTER TABLE secrets ADD COLUMN failed_verifies INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN failed_since INTEGER;
