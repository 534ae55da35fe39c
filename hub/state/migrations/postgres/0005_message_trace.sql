-- The message trace: what happened to each message, one row per step (received, produced,
-- rejected, duplicate, pulled, delivered, dead_lettered, replayed). Append-only; purged after
-- `[trace] retention_days`. `detail` is JSON text holding codes, sizes, topics, offsets,
-- routes and partner codes only, never payload values (no personal data).
CREATE TABLE hub_message_trace (
    seq             BIGSERIAL PRIMARY KEY,
    message_id      TEXT    NOT NULL,
    correlation_id  TEXT,
    object_id       TEXT,
    at_ms           BIGINT  NOT NULL,
    stage           TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    detail          TEXT    NOT NULL
);
CREATE INDEX hub_message_trace_message ON hub_message_trace (message_id);
CREATE INDEX hub_message_trace_correlation ON hub_message_trace (correlation_id);
CREATE INDEX hub_message_trace_object ON hub_message_trace (object_id);
CREATE INDEX hub_message_trace_time ON hub_message_trace (at_ms);
