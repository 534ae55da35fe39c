-- The index of dead letters. The dead letter itself (original bytes, headers, reason) is a
-- record on the dead-letter topic; this table finds it again by route, reason and time, and
-- keeps what operators did with it. status: 'pending', 'replayed' or 'discarded'.
CREATE TABLE hub_dead_letters (
    id                   TEXT    NOT NULL PRIMARY KEY,
    route                TEXT    NOT NULL,
    original_message_id  TEXT    NOT NULL,
    object_id            TEXT    NOT NULL,
    reason_code          TEXT    NOT NULL,
    reason               TEXT    NOT NULL,
    partner_code         TEXT,
    attempts             INTEGER NOT NULL,
    source_topic         TEXT    NOT NULL,
    source_partition     INTEGER NOT NULL,
    source_offset        INTEGER NOT NULL,
    dlq_topic            TEXT    NOT NULL,
    dlq_partition        INTEGER NOT NULL,
    dlq_offset           INTEGER NOT NULL,
    dead_lettered_at_ms  INTEGER NOT NULL,
    status               TEXT    NOT NULL,
    status_at_ms         INTEGER,
    status_by            TEXT,
    UNIQUE (route, source_topic, source_partition, source_offset)
);
CREATE INDEX hub_dead_letters_time ON hub_dead_letters (dead_lettered_at_ms);
CREATE INDEX hub_dead_letters_message ON hub_dead_letters (original_message_id);
