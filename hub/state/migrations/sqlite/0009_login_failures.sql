-- Failed console logins, counted per (source address, operator name) in the state store that
-- every replica shares (docs/console.md): a source that keeps failing for a name waits longer
-- and longer before its next attempt for that name, while the operator (from any other
-- source) can still sign in. A success clears the row; a row whose last failure is older than
-- an hour starts again from one.
CREATE TABLE hub_login_failures (
    source           TEXT    NOT NULL,
    operator         TEXT    NOT NULL,
    failures         INTEGER NOT NULL,
    last_failure_ms  INTEGER NOT NULL,
    blocked_until_ms INTEGER NOT NULL,
    PRIMARY KEY (source, operator)
);
CREATE INDEX hub_login_failures_last ON hub_login_failures (last_failure_ms);
