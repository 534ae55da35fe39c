//! Removing complete files that no record references (`docs/files.md`, "Files no record
//! references"): a push that failed after its file was stored (a mapping error, Kafka away)
//! leaves a complete file nothing names. The gateway holds every file it stores for a push as
//! provisional in the state store (`hub_file_refs`) and marks it referenced once the push's
//! record is acknowledged by Kafka; [`remove_unreferenced`] deletes the files still provisional
//! after a grace period.
//!
//! Order, so that no referenced file is ever deleted: claim the row (`provisional` and not
//! touched within the grace → `sweeping`, atomically), delete the file (metadata first), then
//! the row. A push storing the same content meanwhile either touched the row before the claim
//! (then it is not claimed), finds it `sweeping` (and answers "retry"), or finds no row after
//! the deletion and checks the file exists before referencing it (and answers "retry" when it
//! does not). A sweep that stops between claim and row deletion leaves a `sweeping` row, which a
//! later sweep takes up again after [`STALE_SWEEP`].

use std::time::Duration;

use hub_state::StateStore;

use crate::error::{FileError, FileErrorCode};
use crate::id::FileId;
use crate::store::FileStore;

/// A `sweeping` row older than this belongs to a sweep that stopped: taken up again.
pub const STALE_SWEEP: Duration = Duration::from_secs(600);

/// Rows claimed per round.
const BATCH: i64 = 200;

/// Deletes the files held provisional (stored for a push whose record was never acknowledged)
/// for longer than `grace`; how many files were deleted.
pub async fn remove_unreferenced(
    store: &FileStore,
    state: &StateStore,
    grace: Duration,
) -> Result<usize, FileError> {
    let state_err = |e: hub_state::StateError| {
        FileError::new(FileErrorCode::StoreUnavailable, format!("state store: {e}"))
    };
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let now = chrono::Utc::now().timestamp_millis();
    let mut removed = 0;
    loop {
        let claimed = state
            .claim_unreferenced_files(
                now.saturating_sub(ms(grace)),
                now.saturating_sub(ms(STALE_SWEEP)),
                BATCH,
            )
            .await
            .map_err(state_err)?;
        for id in &claimed {
            // A row whose id does not parse names no file: forgotten.
            if let Ok(file) = FileId::parse(id) {
                if store.delete(&file).await? {
                    removed += 1;
                }
            }
            state.forget_swept_file(id).await.map_err(state_err)?;
        }
        if (claimed.len() as i64) < BATCH {
            break;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "file store: files no record references removed");
    }
    Ok(removed)
}
