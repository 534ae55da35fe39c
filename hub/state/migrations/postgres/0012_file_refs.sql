-- Files the gateway stored for a push (hub-files, docs/files.md "Files no record references"):
-- 'provisional' from the store until the push's record is acknowledged by Kafka, then
-- 'referenced' for good. Only a row still 'provisional' after the grace period may be swept:
-- the sweep claims it ('sweeping'), deletes the file, then the row. Files stored by other
-- paths (SFTP pickups) are 'referenced' or have no row, and are never swept.
CREATE TABLE hub_file_refs (
    file_id          TEXT    NOT NULL PRIMARY KEY,
    state            TEXT    NOT NULL,
    touched_at_ms    BIGINT  NOT NULL,
    created_at_ms    BIGINT  NOT NULL
);
CREATE INDEX hub_file_refs_sweep ON hub_file_refs (state, touched_at_ms);
