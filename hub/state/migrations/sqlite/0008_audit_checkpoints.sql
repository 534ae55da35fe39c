-- Signed checkpoints of the audit chain: "the chain up to record `seq` was verified intact and
-- ends in `hash`", HMAC-SM3 under the audit checkpoint key (`key_id` names it). Verification
-- starts from the newest valid one, and retention deletes only records a checkpoint covers.
CREATE TABLE hub_audit_checkpoints (
    seq        INTEGER PRIMARY KEY NOT NULL,
    hash       TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL,
    key_id     TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);
