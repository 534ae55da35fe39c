//! SFTP batch pickups as hub jobs (`docs/files.md`, "Batch files over SFTP"): each
//! `[[batch]]` of an adapter listed in `[partners.<name>] batches` runs on its schedule, picks
//! the new files of the partner's SFTP folder up into the file store (`hub_files::sftp::Pickup`,
//! the ledger in the state store), and announces each with one record produced through the
//! batch's inbound mapping, acknowledged by Kafka (`acks=all`) before the ledger records the
//! file as handed over. So a file is announced once and only once across restarts and
//! replicas; a crash between the produce and the ledger is absorbed by an idempotency receipt
//! keyed by the pickup id. A file whose record the mapping refuses is dead-lettered once
//! (sealed: its name may be personal) and then handed over, so it is not tried every run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hub_adapter::schedule::{parse_cron, Schedule};
use hub_bus::{now_shanghai, Lifecycle, Producer};
use hub_contracts::Catalog;
use hub_files::sftp::{PickedFile, Pickup, SftpSection};
use hub_files::wiring::BatchSpec;
use hub_files::{FileError, FileErrorCode, FileStore};
use hub_mapping::MappingSet;
use hub_security::field::FieldCipher;
use hub_state::{Receipt, StateStore};
use tracing::{info, warn, Instrument};

/// One batch pickup of one partner, as configured.
#[derive(Debug, Clone)]
pub struct BatchJob {
    pub partner: String,
    pub spec: BatchSpec,
    pub sftp: SftpSection,
}

impl BatchJob {
    /// `<partner>/<batch>`: the job's name in logs, the ledger and the lease.
    pub fn route(&self) -> String {
        format!("{}/{}", self.partner, self.spec.name)
    }
}

/// What the jobs share.
pub struct BatchContext {
    pub catalog: Arc<Catalog>,
    pub mappings: Arc<MappingSet>,
    pub cipher: FieldCipher,
    pub producer: Producer,
    pub state: StateStore,
    pub store: FileStore,
    pub schema_ids: HashMap<String, u32>,
    pub instance_id: String,
    /// The configuration file's folder (relative key files of the SFTP sections).
    pub base_dir: PathBuf,
}

/// Starts every job's schedule loop on the lifecycle; their names.
pub fn start_batches(
    ctx: Arc<BatchContext>,
    jobs: Vec<BatchJob>,
    lifecycle: &Lifecycle,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for job in jobs {
        let schedule = match (&job.spec.every_ms, &job.spec.cron) {
            (Some(ms), _) => Schedule::Every(Duration::from_millis(*ms)),
            (None, Some(c)) => Schedule::Cron(Box::new(
                parse_cron(c).map_err(|e| format!("{}: {e}", job.route()))?,
            )),
            (None, None) => return Err(format!("{}: no schedule", job.route())),
        };
        names.push(job.route());
        let span = tracing::info_span!("batch", job = %job.route());
        lifecycle.spawn(
            schedule_loop(Arc::clone(&ctx), job, schedule, lifecycle.clone()).instrument(span),
        );
    }
    Ok(names)
}

async fn schedule_loop(ctx: Arc<BatchContext>, job: BatchJob, schedule: Schedule, lc: Lifecycle) {
    let mut sftp = job.sftp.clone();
    if let Some(dir) = &job.spec.remote_dir {
        sftp.inbox = Some(dir.clone());
    }
    let pickup = Pickup {
        job: job.route(),
        holder: ctx.instance_id.clone(),
        sftp,
        base_dir: ctx.base_dir.clone(),
        store: ctx.store.clone(),
        state: ctx.state.clone(),
        put: job.spec.put_options(),
    };
    info!("batch pickup scheduled");
    loop {
        tokio::select! {
            () = lc.token().cancelled() => return,
            () = tokio::time::sleep(schedule.until_next(&now_shanghai())) => {}
        }
        let spec = &job.spec;
        let matches = |name: &str| spec.matches(name);
        let run = pickup
            .run_once_matching(&matches, |file| announce(&ctx, &job, file))
            .await;
        match run {
            Ok(r) if r.not_leader => {}
            Ok(r) => {
                if !r.handed_over.is_empty() || !r.failed.is_empty() {
                    // Never the file names: they may be personal.
                    info!(
                        handed_over = r.handed_over.len(),
                        moved = r.moved,
                        already_picked = r.already_picked,
                        failed = r.failed.len(),
                        "batch pickup run"
                    );
                }
            }
            Err(e) => {
                warn!(code = e.code(), error = %e.detail, "batch pickup run failed; retried next run")
            }
        }
    }
}

/// Produces the record announcing `file`, once: an idempotency receipt keyed by the pickup id
/// makes a second call after a crash (produced, not yet recorded in the ledger) a no-op.
async fn announce(ctx: &BatchContext, job: &BatchJob, file: PickedFile) -> Result<(), FileError> {
    let Some(mapping) = ctx.mappings.get(&job.partner, &job.spec.mapping) else {
        return Err(FileError::new(
            FileErrorCode::ConfigInvalid,
            format!("mapping `{}` is not loaded", job.spec.mapping),
        ));
    };
    let input = serde_json::json!({
        "file_id": file.file.id.to_string(),
        "file_name": file.remote_name,
        "size": file.file.size,
        "media_type": file.file.media_type,
        "partner": job.partner,
        "batch": job.spec.name,
        "pickup_id": file.pickup_id,
    });
    let bytes = serde_json::to_vec(&input).expect("JSON");
    let normalized = match hub_pipeline::normalize(
        mapping,
        &ctx.catalog,
        &ctx.cipher,
        |c| hub_contracts::framing_schema_id(&ctx.schema_ids, c),
        &bytes,
    ) {
        Ok(n) => n,
        // Refused by the mapping: permanent for this file. Dead-lettered (once), then handed
        // over like an announced file, so it is not tried again every run.
        Err(e) => return dead_letter_file(ctx, job, &file, &bytes, &e).await,
    };
    let app = format!("batch:{}", job.partner);
    let mut envelope = normalized.envelope(&job.partner, &app);
    let stale_after = i64::try_from(ctx.producer.delivery_timeout().as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    let state_err =
        |e: hub_state::StateError| FileError::new(FileErrorCode::StoreUnavailable, e.to_string());
    match ctx
        .state
        .claim_receipt(
            &app,
            &file.pickup_id,
            &envelope.message_id.to_string(),
            &normalized.topic,
            stale_after,
        )
        .await
        .map_err(state_err)?
    {
        Receipt::Done { .. } => return Ok(()),
        Receipt::InProgress => {
            return Err(FileError::new(
                FileErrorCode::StoreUnavailable,
                "the file's record is being produced by another run",
            ))
        }
        Receipt::Claimed { message_id } => {
            if let Ok(id) = message_id.parse() {
                envelope.message_id = id;
                envelope.correlation_id = message_id;
            }
        }
    }
    match ctx
        .producer
        .send(&normalized.topic, &envelope, &normalized.framed)
        .await
    {
        Ok(_) => {
            ctx.state
                .complete_receipt(&app, &file.pickup_id)
                .await
                .map_err(state_err)?;
            metrics::counter!("hub_batch_files_total", "batch" => job.route(), "outcome" => "announced")
                .increment(1);
            info!(file_id = %file.file.id, size = file.file.size, message_id = %envelope.message_id, "batch file announced");
            Ok(())
        }
        Err(e) => {
            let _ = ctx.state.release_receipt(&app, &file.pickup_id).await;
            Err(FileError::new(
                FileErrorCode::SendFailed,
                format!("the file's record was not produced: {e}"),
            ))
        }
    }
}

/// The dead letters' route of a batch: `<partner>/batch.<name>` (beside `<partner>/<delivery>`
/// and `<partner>/pull.<job>`).
pub fn dead_letter_route(job: &BatchJob) -> String {
    format!("{}/batch.{}", job.partner, job.spec.name)
}

/// A file whose record the batch's mapping refuses goes to the hub's dead-letter topic: the
/// mapping's input (`{"file_id", "file_name", …}`) sealed as a whole under the key ring
/// (context `batch/<partner>/batch.<name>`, header `hub-payload-sealed`), as the poller does
/// with an item it cannot map, because it holds the file name, which may be personal; the
/// reason has the name cut out. Its source is the batch and a stable hash of the pickup id, so
/// a run repeated after a crash finds the dead letter already written instead of writing a
/// second. A failure to write it (Kafka or the state store away) is returned: the file is
/// tried again next run.
async fn dead_letter_file(
    ctx: &BatchContext,
    job: &BatchJob,
    file: &PickedFile,
    input: &[u8],
    refusal: &hub_pipeline::NormalizeError,
) -> Result<(), FileError> {
    let route = dead_letter_route(job);
    let context = format!("batch/{route}");
    let unavailable = |what: &str, e: String| {
        FileError::new(FileErrorCode::StoreUnavailable, format!("{what}: {e}"))
    };
    let contract = ctx
        .catalog
        .contract(hub_egress::DEAD_LETTER_TOPIC)
        .ok_or_else(|| {
            FileError::new(
                FileErrorCode::ConfigInvalid,
                "the dead-letter contract is not loaded",
            )
        })?;
    let sealed = hub_egress::deadletter::seal_payload(&ctx.cipher, &context, input)
        .map_err(|e| FileError::new(FileErrorCode::EncryptionUnavailable, e.to_string()))?;
    let digest = hub_security::sm::sm3_hex(file.pickup_id.as_bytes());
    let offset = i64::from_str_radix(&digest[..15], 16).unwrap_or_default();
    let file_id = file.file.id.to_string();
    let mut envelope = hub_bus::Envelope::new(
        "batch.file",
        1,
        format!("batch:{}", job.partner),
        job.partner.clone(),
        file_id.clone(),
        now_shanghai(),
    );
    envelope.traceparent = hub_telemetry::current().map(|t| t.to_string());
    let headers = hub_egress::deadletter::mark_sealed(envelope.to_headers());
    let d = hub_bus::Delivery {
        topic: context,
        partition: -1,
        offset,
        key: Some(file_id.clone().into_bytes()),
        headers: Some(headers),
        payload: Some(sealed),
        envelope: Ok(envelope),
    };
    let reason = refusal
        .to_string()
        .replace(&file.remote_name, "<file name>");
    let failure = hub_egress::deadletter::Failure {
        reason_code: refusal.code().to_string(),
        reason: format!("the batch's mapping refused the file's record: {reason}"),
        partner_code: None,
        partner_answer: None,
        attempts: 1,
    };
    let entry = hub_egress::deadletter::dead_letter(
        contract,
        hub_contracts::framing_schema_id(&ctx.schema_ids, contract),
        &ctx.producer,
        &ctx.state,
        &route,
        &d,
        &failure,
    )
    .await
    .map_err(|e| unavailable("the dead letter was not written", e.to_string()))?;
    metrics::counter!("hub_batch_files_total", "batch" => job.route(), "outcome" => "dead_lettered")
        .increment(1);
    // The file id and the code, never the file name.
    warn!(file_id = %file_id, dead_letter = %entry.id, reason = refusal.code(), "batch file refused by its mapping; dead-lettered");
    Ok(())
}
