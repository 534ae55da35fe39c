//! Which stored files a record references (`docs/files.md`, "Files no record references"): the
//! gateway holds each file it stores for a push as `provisional` until the push's record is
//! acknowledged by Kafka, then marks it `referenced` for good; an SFTP pickup marks the files it
//! picks up `referenced`. The hourly sweep claims the rows still `provisional` after a grace
//! period (`sweeping`), deletes their files, then the rows. A file with no row (stored by
//! another path, or before this table) or `referenced` is never swept.
//!
//! Races, all decided by the row (atomic on both backends; on SQLite under the write gate):
//! * a push storing content already stored touches the row (`provisional` → a fresh
//!   `touched_at_ms`), so a sweep that has not yet claimed it no longer can;
//! * a push finding the row `sweeping` (claimed by a sweep that may be deleting the file) is
//!   told so ([`FileHold::Sweeping`]) and answers "retry"; the retry stores the file again;
//! * a push that held the row after the sweep deleted it then checks the file still exists
//!   (the sweep deletes the file before the row), and answers "retry" if not.

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// What [`StateStore::hold_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHold {
    /// Held as provisional (a new row, or an earlier provisional one touched).
    Provisional,
    /// Already referenced by an acknowledged record or a pickup: never swept.
    Referenced,
    /// A sweep has claimed it and may be deleting the file: the caller must not reference it.
    Sweeping,
    /// No row, and the caller did not ask for one (a file stored earlier by another path).
    Untracked,
}

impl FileHold {
    fn of(state: &str) -> Self {
        match state {
            "provisional" => FileHold::Provisional,
            "sweeping" => FileHold::Sweeping,
            _ => FileHold::Referenced,
        }
    }
}

impl StateStore {
    /// Holds `file_id`, just stored for a push, as provisional. `track_new`: make a row when
    /// there is none (the push's put created the file); otherwise only an existing
    /// provisional row is touched, so a file stored earlier by another path never becomes
    /// sweepable. A referenced row is left as it is.
    pub async fn hold_file(&self, file_id: &str, track_new: bool) -> Result<FileHold, StateError> {
        let result: Result<_, StateError> = async {
            let now = now_ms();
            let _gate = self.write_gate().await;
            if track_new {
                let sql =
                    "INSERT INTO hub_file_refs (file_id, state, touched_at_ms, created_at_ms) \
                           VALUES ($1, 'provisional', $2, $2) \
                           ON CONFLICT (file_id) DO UPDATE SET touched_at_ms = CASE \
                           WHEN hub_file_refs.state = 'provisional' THEN excluded.touched_at_ms \
                           ELSE hub_file_refs.touched_at_ms END \
                           RETURNING state";
                let state: String = on_pool!(self, p => sqlx::query(sql).bind(file_id).bind(now)
                    .fetch_one(p).await?.try_get("state")?);
                return Ok(FileHold::of(&state));
            }
            let touch = "UPDATE hub_file_refs SET touched_at_ms = $2 \
                         WHERE file_id = $1 AND state = 'provisional'";
            let read = "SELECT state FROM hub_file_refs WHERE file_id = $1";
            let state: Option<String> = on_pool!(self, p => {
                sqlx::query(touch).bind(file_id).bind(now).execute(p).await?;
                match sqlx::query(read).bind(file_id).fetch_optional(p).await? {
                    Some(r) => Some(r.try_get("state")?),
                    None => None,
                }
            });
            Ok(state.map_or(FileHold::Untracked, |s| FileHold::of(&s)))
        }
        .await;
        observed("hold_file", result)
    }

    /// Marks files referenced for good: a record naming them was acknowledged by Kafka, or a
    /// pickup stored them. Idempotent; makes a row when there is none.
    pub async fn reference_files(&self, file_ids: &[String]) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_file_refs (file_id, state, touched_at_ms, created_at_ms) \
                       VALUES ($1, 'referenced', $2, $2) \
                       ON CONFLICT (file_id) DO UPDATE SET state = 'referenced', \
                       touched_at_ms = excluded.touched_at_ms";
            let now = now_ms();
            let _gate = self.write_gate().await;
            for id in file_ids {
                on_pool!(self, p => sqlx::query(sql).bind(id).bind(now).execute(p).await?.rows_affected());
            }
            Ok(())
        }
        .await;
        observed("reference_files", result)
    }

    /// Claims for deletion up to `limit` files held provisional since before `provisional_before_ms`
    /// (and rows a sweep claimed before `stale_sweep_before_ms` and never finished), never one a
    /// pickup's ledger names: each becomes `sweeping`. Atomic across replicas: a row is claimed by
    /// one sweep, and not once a push touched it.
    pub async fn claim_unreferenced_files(
        &self,
        provisional_before_ms: i64,
        stale_sweep_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StateError> {
        let result: Result<_, StateError> = async {
            let due = "((state = 'provisional' AND touched_at_ms <= $1) \
                       OR (state = 'sweeping' AND touched_at_ms <= $2))";
            let sql = format!(
                "UPDATE hub_file_refs SET state = 'sweeping', touched_at_ms = $4 \
                 WHERE file_id IN (SELECT r.file_id FROM hub_file_refs r WHERE {due} \
                 AND NOT EXISTS (SELECT 1 FROM hub_file_pickups p WHERE p.file_id = r.file_id) \
                 ORDER BY r.touched_at_ms LIMIT $3) AND {due} RETURNING file_id"
            );
            let now = now_ms();
            let _gate = self.write_gate().await;
            let ids: Vec<String> = on_pool!(self, p => {
                let rows = sqlx::query(&sql)
                    .bind(provisional_before_ms)
                    .bind(stale_sweep_before_ms)
                    .bind(limit)
                    .bind(now)
                    .fetch_all(p)
                    .await?;
                rows.iter().map(|r| r.try_get("file_id")).collect::<Result<Vec<String>, _>>()?
            });
            Ok(ids)
        }
        .await;
        observed("claim_unreferenced_files", result)
    }

    /// Forgets a file the sweep deleted (only while still `sweeping`).
    pub async fn forget_swept_file(&self, file_id: &str) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_file_refs WHERE file_id = $1 AND state = 'sweeping'";
            let _gate = self.write_gate().await;
            let n = on_pool!(self, p => sqlx::query(sql).bind(file_id).execute(p).await?.rows_affected());
            Ok(n == 1)
        }
        .await;
        observed("forget_swept_file", result)
    }

    /// The row of a file (`provisional`, `referenced`, `sweeping`), if any.
    pub async fn file_ref(&self, file_id: &str) -> Result<Option<String>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "SELECT state FROM hub_file_refs WHERE file_id = $1";
            let state: Option<String> = on_pool!(self, p => {
                match sqlx::query(sql).bind(file_id).fetch_optional(p).await? {
                    Some(r) => Some(r.try_get("state")?),
                    None => None,
                }
            });
            Ok(state)
        }
        .await;
        observed("file_ref", result)
    }
}
