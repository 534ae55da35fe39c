-- The audit log: append-only, each record chained to the previous one with SM3.
-- hash = SM3(prev_hash || canonical record); the head row holds the last seq and hash, so a
-- removed tail is detected, and serialises appends across writers (its row is locked first).
CREATE TABLE hub_audit (
    seq        BIGINT PRIMARY KEY NOT NULL,
    at_ms      BIGINT NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

CREATE TABLE hub_audit_head (
    id    BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO hub_audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
