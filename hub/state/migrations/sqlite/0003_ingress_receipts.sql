-- Receipts of accepted pushes, so a partner's retry of the same message (same app and
-- partner message id) is answered with the first answer instead of producing a second event.
-- state: 'pending' while the message is being produced, 'done' once the broker acknowledged it.
CREATE TABLE hub_ingress_receipts (
    app_id              TEXT    NOT NULL,
    partner_message_id  TEXT    NOT NULL,
    message_id          TEXT    NOT NULL,
    topic               TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (app_id, partner_message_id)
);
CREATE INDEX hub_ingress_receipts_created ON hub_ingress_receipts (created_at_ms);
