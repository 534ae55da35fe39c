-- Foundation tables of the hub's own state. Times are Unix epoch milliseconds (UTC).

-- One row per running hub instance; /readyz proves the store is writable by updating it.
CREATE TABLE hub_instances (
    instance_id   TEXT    PRIMARY KEY NOT NULL,
    started_at_ms BIGINT NOT NULL,
    seen_at_ms    BIGINT NOT NULL,
    version       TEXT    NOT NULL
);

-- Replay protection: a (partner app, nonce) pair is accepted once within its window.
CREATE TABLE hub_nonces (
    app_id        TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, nonce)
);
CREATE INDEX hub_nonces_expiry ON hub_nonces (expires_at_ms);

-- Pull cursors (watermark and/or last id), saved only after a page is on Kafka.
CREATE TABLE hub_cursors (
    name          TEXT    PRIMARY KEY NOT NULL,
    value         TEXT    NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Leases: at most one replica holds a named job (a pull) at a time.
CREATE TABLE hub_leases (
    name          TEXT    PRIMARY KEY NOT NULL,
    holder        TEXT    NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
