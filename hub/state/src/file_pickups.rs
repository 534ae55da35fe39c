//! The ledger of batch files picked up from partners' SFTP folders (`hub-files`, `docs/files.md`):
//! a remote file is claimed once, handed over, then moved, each step recorded, so that a restart
//! or a second replica never picks the same file up twice.

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// One remote file as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePickup {
    pub job: String,
    pub remote_name: String,
    pub remote_size: i64,
    pub remote_mtime: i64,
    /// The hub file id (`sm3:<hex>`) the file was stored under.
    pub file_id: String,
    /// `claimed`, `handled` or `moved`.
    pub state: String,
    pub picked_at_ms: i64,
}

impl StateStore {
    /// What the ledger knows of a remote file.
    pub async fn file_pickup(
        &self,
        job: &str,
        remote_name: &str,
        remote_size: i64,
        remote_mtime: i64,
    ) -> Result<Option<FilePickup>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "SELECT file_id, state, picked_at_ms FROM hub_file_pickups \
                       WHERE job = $1 AND remote_name = $2 AND remote_size = $3 AND remote_mtime = $4";
            let row: Option<(String, String, i64)> = on_pool!(self, p => {
                let row = sqlx::query(sql).bind(job).bind(remote_name).bind(remote_size).bind(remote_mtime)
                    .fetch_optional(p).await?;
                match row {
                    Some(r) => Some((r.try_get("file_id")?, r.try_get("state")?, r.try_get("picked_at_ms")?)),
                    None => None,
                }
            });
            Ok(row.map(|(file_id, state, picked_at_ms)| FilePickup {
                job: job.to_string(),
                remote_name: remote_name.to_string(),
                remote_size,
                remote_mtime,
                file_id,
                state,
                picked_at_ms,
            }))
        }
        .await;
        observed("file_pickup", result)
    }

    /// Claims a remote file stored as `file_id`. `false`: it was already claimed (by an earlier
    /// run or another replica). Atomic across replicas.
    pub async fn claim_file_pickup(
        &self,
        job: &str,
        remote_name: &str,
        remote_size: i64,
        remote_mtime: i64,
        file_id: &str,
    ) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_file_pickups (job, remote_name, remote_size, remote_mtime, file_id, state, picked_at_ms, updated_at_ms) \
                       VALUES ($1, $2, $3, $4, $5, 'claimed', $6, $6) \
                       ON CONFLICT (job, remote_name, remote_size, remote_mtime) DO NOTHING";
            let now = now_ms();
            let done = on_pool!(self, p => sqlx::query(sql)
                .bind(job).bind(remote_name).bind(remote_size).bind(remote_mtime).bind(file_id).bind(now)
                .execute(p).await?.rows_affected());
            Ok(done == 1)
        }
        .await;
        observed("claim_file_pickup", result)
    }

    /// Records a remote file's next step (`handled`, then `moved`).
    pub async fn advance_file_pickup(
        &self,
        job: &str,
        remote_name: &str,
        remote_size: i64,
        remote_mtime: i64,
        state: &str,
    ) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_file_pickups SET state = $1, updated_at_ms = $2 \
                       WHERE job = $3 AND remote_name = $4 AND remote_size = $5 AND remote_mtime = $6";
            let now = now_ms();
            on_pool!(self, p => sqlx::query(sql)
                .bind(state).bind(now).bind(job).bind(remote_name).bind(remote_size).bind(remote_mtime)
                .execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("advance_file_pickup", result)
    }
}
