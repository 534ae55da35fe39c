-- The hotline app's tables (PostgreSQL, in the app's schema `hotline`). Kept in step with ../sqlite/0001_hotline.sql.
-- Times the platform gives are kept as its RFC 3339 text and, where the app compares or sorts
-- by them, also as Unix epoch milliseconds (UTC) in a *_ms column.

-- ── app-kit: the consumer's offsets, the message ids it applied, what it rejected, and the
-- outbox. Same DDL in every app (see apps/kit/src/lib.rs).

-- Next offset to read per partition, written in the same transaction as the records' effects.
CREATE TABLE app_consumer_offsets (
    consumer      TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    partition_no  INTEGER NOT NULL,
    next_offset   BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, partition_no)
);

-- Every envelope message id applied (or rejected): a second copy is absorbed.
CREATE TABLE app_processed_messages (
    consumer        TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    partition_no    INTEGER NOT NULL,
    record_offset   BIGINT NOT NULL,
    outcome         TEXT    NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX app_processed_messages_at ON app_processed_messages (processed_at_ms);

-- Records that can never be applied, with a stable code; the consumer moved past them.
CREATE TABLE app_rejected_messages (
    consumer       TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition_no   INTEGER NOT NULL,
    record_offset  BIGINT NOT NULL,
    message_id     TEXT,
    code           TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    rejected_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, partition_no, record_offset)
);

-- Messages to produce, written in the same transaction as the state change they announce.
CREATE TABLE app_outbox (
    seq              BIGSERIAL PRIMARY KEY,
    message_id       TEXT    NOT NULL UNIQUE,
    topic            TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    contract_version BIGINT NOT NULL,
    source_adapter   TEXT    NOT NULL,
    partner          TEXT    NOT NULL,
    object_id        TEXT    NOT NULL,
    occurred_at      TEXT    NOT NULL,
    received_at      TEXT    NOT NULL,
    correlation_id   TEXT    NOT NULL,
    causation_id     TEXT,
    traceparent      TEXT,
    tracestate       TEXT,
    payload          BYTEA   NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at_ms       BIGINT,
    sent_partition   INTEGER,
    sent_offset      BIGINT
);
CREATE INDEX app_outbox_unsent ON app_outbox (sent_at_ms, seq);

-- ── hotline

-- One row per ticket dispatched to one of the configured handling units. Personal fields are
-- kept sealed exactly as they came from Kafka (SM4-GCM, context hotline.ticket.dispatched.v1/…)
-- beside their masked form, so callers without the right to see them never cause a decryption.
CREATE TABLE hotline_tickets (
    ticket_no           TEXT    PRIMARY KEY NOT NULL,
    status              TEXT    NOT NULL,
    channel             TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    appeal_content      TEXT    NOT NULL,
    category_code       TEXT    NOT NULL,
    category_name       TEXT,
    urgency             TEXT    NOT NULL,
    district_code       TEXT    NOT NULL,
    address_sealed      TEXT,
    address_masked      TEXT,
    caller_name_sealed  TEXT,
    caller_name_masked  TEXT,
    caller_phone_sealed TEXT,
    caller_phone_masked TEXT,
    handling_unit_code  TEXT    NOT NULL,
    handling_unit_name  TEXT    NOT NULL,
    sign_deadline       TEXT    NOT NULL,
    sign_deadline_ms    BIGINT NOT NULL,
    handle_deadline     TEXT    NOT NULL,
    handle_deadline_ms  BIGINT NOT NULL,
    -- The deadline that matters in the current status (sign, then handle); NULL once finished.
    active_deadline_ms  BIGINT,
    requested_deadline  TEXT,
    dispatched_at       TEXT    NOT NULL,
    dispatched_at_ms    BIGINT NOT NULL,
    attachments         TEXT,
    signed_at           TEXT,
    returned_at         TEXT,
    extension_requested_at TEXT,
    replied_at          TEXT,
    closed_at           TEXT,
    closed_at_ms        BIGINT,
    close_kind          TEXT,
    urge_count          BIGINT NOT NULL DEFAULT 0,
    last_urged_at       TEXT,
    last_urged_at_ms    BIGINT,
    satisfaction        TEXT,
    visit_resolution    TEXT,
    visited_at          TEXT,
    visited_at_ms       BIGINT,
    -- The dispatch message that brought the ticket (causation of our answers) and the case's
    -- correlation id (carried onto our answers).
    dispatch_message_id TEXT    NOT NULL,
    correlation_id      TEXT    NOT NULL,
    dispatch_count      BIGINT NOT NULL DEFAULT 1,
    version             BIGINT NOT NULL
);
CREATE INDEX hotline_tickets_status ON hotline_tickets (status);
CREATE INDEX hotline_tickets_district ON hotline_tickets (district_code);
CREATE INDEX hotline_tickets_category ON hotline_tickets (category_code);
CREATE INDEX hotline_tickets_deadline ON hotline_tickets (active_deadline_ms);

-- Every event of a ticket, from the platform (inbound) or from our case handlers (outbound),
-- with the contract record as JSON (personal fields sealed) and its masked form. An inbound
-- event may arrive before its ticket's dispatch (topics are read in parallel): it waits here
-- and is applied when the dispatch comes.
CREATE TABLE hotline_ticket_events (
    message_id     TEXT    PRIMARY KEY NOT NULL,
    ticket_no      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    direction      TEXT    NOT NULL,
    contract_topic TEXT    NOT NULL,
    occurred_at    TEXT    NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    actor          TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT,
    record         TEXT    NOT NULL,
    record_masked  TEXT    NOT NULL
);
CREATE INDEX hotline_ticket_events_ticket ON hotline_ticket_events (ticket_no, occurred_at_ms);
