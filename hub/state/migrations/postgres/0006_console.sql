-- The operators' console (docs/console.md): operator accounts and their sessions, and an index
-- for the console's "recent rejections" of a partner (trace events by stage, newest first).
-- Passwords are stored as argon2id PHC strings; a session is stored as the SM3 digest of its
-- random token, never the token itself.
CREATE TABLE hub_operators (
    name            TEXT    PRIMARY KEY,
    role            TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash   TEXT    NOT NULL,
    disabled        BIGINT  NOT NULL DEFAULT 0,
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL
);
CREATE TABLE hub_console_sessions (
    token_hash      TEXT    PRIMARY KEY,
    operator        TEXT    NOT NULL REFERENCES hub_operators (name),
    created_at_ms   BIGINT  NOT NULL,
    expires_at_ms   BIGINT  NOT NULL,
    last_seen_at_ms BIGINT  NOT NULL
);
CREATE INDEX hub_console_sessions_operator ON hub_console_sessions (operator);
CREATE INDEX hub_console_sessions_expiry ON hub_console_sessions (expires_at_ms);
CREATE INDEX hub_message_trace_stage ON hub_message_trace (stage, seq);
