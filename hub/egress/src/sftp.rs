//! SFTP deliveries (`[[delivery]] transport = "sftp"`, `docs/files.md`, "Uploading batch
//! files"): the outbound mapping names a stored file and a remote file name
//! (`file = { pointer, style = "sftp", file_name }`); the file is uploaded into the partner's
//! `[partners.<p>.sftp] outbox` with [`hub_files::sftp::SftpClient::upload`] (written as
//! `.<name>.part`, then renamed over any earlier file of that name).
//!
//! The egress's guarantees hold as for an HTTP delivery: the record is consumed from the
//! contract topic by the route's worker, its offset committed only once uploaded or
//! dead-lettered; transient failures (connection, time-out, the store away, authentication or
//! a host key an operator may fix) are retried with the delivery's policy (full-jitter backoff,
//! `max_attempts`, `retry_budget_ms`); permanent ones (`FILE_NOT_FOUND`, `FILE_ID_INVALID`,
//! `FILE_NAME_INVALID`, `SFTP_PERMISSION_DENIED`, `FILE_INTEGRITY`, …) are dead-lettered with
//! their code. A repeat (a crash before the commit, a replay) uploads the same name again,
//! which replaces it: harmless. The partner's HTTP circuit breaker and rate limit are not
//! used (the SFTP server is another endpoint); each record has its own SSH session.
//!
//! The remote file name may be personal: it is never logged nor put in a dead letter's reason.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hub_adapter::backoff::full_jitter;
use hub_bus::{Delivery, Envelope};
use hub_files::sftp::{SftpClient, SftpSection};
use hub_files::{FileError, FileErrorCode, FileId, FileStore};
use metrics::{counter, histogram};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::worker::{failure, give_up, pause, Finish, Route};

/// Where an SFTP delivery's partner takes files: its server and the configuration's folder
/// (relative key files).
#[derive(Debug, Clone)]
pub struct SftpTarget {
    pub section: SftpSection,
    pub base_dir: PathBuf,
}

/// One upload: connect, upload, close.
async fn upload_once(
    target: &SftpTarget,
    outbox: &str,
    store: &FileStore,
    id: &FileId,
    name: &str,
) -> Result<(), FileError> {
    let client = SftpClient::connect(&target.section, &target.base_dir).await?;
    let result = client.upload(store, id, outbox, name).await;
    client.close().await;
    result
}

/// Uploads the file the record's mapped body names, retrying transient failures with the
/// delivery's policy, or dead-letters the record.
pub(crate) async fn deliver(
    route: &Route,
    d: &Delivery,
    envelope: &Envelope,
    mapped: &[u8],
    started: Instant,
    token: &CancellationToken,
) -> Finish {
    let config_invalid =
        |detail: &str| failure(FileErrorCode::ConfigInvalid.code(), detail.into(), 0);
    let Some(store) = &route.ctx.files else {
        let f = config_invalid("the delivery uploads a file but the hub has no [files] store");
        return give_up(route, d, f, None, token).await;
    };
    let Some((target, outbox)) = route
        .spec
        .sftp
        .as_ref()
        .and_then(|t| t.section.outbox.as_deref().map(|o| (t, o)))
    else {
        let f = config_invalid("the partner has no [partners.<p>.sftp] with an outbox");
        return give_up(route, d, f, None, token).await;
    };
    let Some(file) = &route.spec.delivery.file else {
        let f = config_invalid("an SFTP delivery needs file = { style = \"sftp\", … }");
        return give_up(route, d, f, None, token).await;
    };
    let (id, name) = match hub_files::wiring::upload_target(file, mapped) {
        Ok(t) => t,
        Err(e) => return give_up(route, d, failure(e.code(), e.detail, 0), None, token).await,
    };
    let policy = &route.spec.client.section;
    let budget = Duration::from_millis(policy.retry_budget_ms);
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let result = tokio::select! {
            r = upload_once(target, outbox, store, &id, &name) => r,
            () = token.cancelled() => return Finish::Abandoned,
        };
        let outcome = match &result {
            Ok(()) => "DELIVERED",
            Err(e) => e.code(),
        };
        counter!("hub_egress_attempts_total", "route" => route.name.clone(), "outcome" => outcome)
            .increment(1);
        let e = match result {
            Ok(()) => {
                counter!("hub_egress_messages_total", "route" => route.name.clone(), "outcome" => "delivered").increment(1);
                histogram!("hub_egress_delivery_seconds", "route" => route.name.clone())
                    .record(started.elapsed().as_secs_f64());
                // The file id, never its remote name.
                info!(attempts, file_id = %id, "uploaded over SFTP");
                route.ctx.state.trace_event(
                    hub_state::TraceEvent::new("delivered", envelope.message_id.to_string())
                        .correlation(envelope.correlation_id.as_str())
                        .object(envelope.object_id.as_str())
                        .detail(serde_json::json!({
                            "route": route.name, "attempts": attempts, "transport": "sftp",
                            "file_id": id.to_string(),
                            "duration_ms": started.elapsed().as_millis() as u64,
                            "source": { "topic": d.topic, "partition": d.partition, "offset": d.offset },
                        })),
                );
                return Finish::Done;
            }
            Err(e) => e,
        };
        if !e.code.transient() {
            return give_up(route, d, failure(e.code(), e.detail, attempts), None, token).await;
        }
        let spent = started.elapsed();
        let wait = full_jitter(
            Duration::from_millis(policy.backoff_initial_ms),
            Duration::from_millis(policy.backoff_max_ms),
            attempts,
        );
        if attempts >= policy.max_attempts || spent + wait > budget {
            let f = failure(
                "EGRESS_RETRY_EXHAUSTED",
                format!(
                    "{attempts} attempts in {} s; last: {} ({})",
                    spent.as_secs(),
                    e.code(),
                    e.detail
                ),
                attempts,
            );
            return give_up(route, d, f, None, token).await;
        }
        counter!("hub_egress_retries_total", "route" => route.name.clone(), "reason" => e.code())
            .increment(1);
        warn!(attempts, reason = e.code(), error = %e.detail, wait_ms = wait.as_millis() as u64, "SFTP upload failed; will retry");
        if !pause(wait, token).await {
            return Finish::Abandoned;
        }
    }
}
