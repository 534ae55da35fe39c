-- Batch files picked up from partners' SFTP folders (hub-files), so that each remote file is
-- picked up once and only once, across restarts and replicas. A remote file is known by its
-- job, name, size and modification time (a partner replacing a file makes a new one).
-- state: 'claimed' (stored in the file store, not yet handed over), 'handled' (handed over),
-- 'moved' (also moved to the remote done folder).
CREATE TABLE hub_file_pickups (
    job              TEXT    NOT NULL,
    remote_name      TEXT    NOT NULL,
    remote_size      BIGINT  NOT NULL,
    remote_mtime     BIGINT  NOT NULL,
    file_id          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    picked_at_ms     BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL,
    PRIMARY KEY (job, remote_name, remote_size, remote_mtime)
);
