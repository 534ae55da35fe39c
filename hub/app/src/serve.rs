//! `hub serve`: start every part, run until a signal, then drain.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub_bus::admin::{TopicAdmin, TopicOutcome, TopicSpec};
use hub_bus::{Lifecycle, Producer};
use hub_config::Loaded;
use hub_state::StateStore;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::config::HubConfig;

/// How often the instance records it is alive and expired nonces are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

pub async fn serve(loaded: Loaded<HubConfig>) -> ExitCode {
    let cfg = &loaded.config;
    // Kept to the end of `serve`: dropping it exports the last spans (at most 2 s).
    let _telemetry = crate::logging::init(&cfg.log);
    // The recorder first, so every instrument records from the start (`/metrics`).
    let metrics_handle = crate::metrics::install();
    let instance_id = cfg.instance_id();
    info!(version = %crate::version_line(), instance_id, config = %loaded.path.display(), "hub starting");
    for o in &loaded.overrides {
        // The value is not logged: overrides are how secrets reach the process.
        info!(
            variable = o.var,
            key = o.key,
            "configuration key set from the environment"
        );
    }

    if let Some(problem) = crate::profile::key_ring_problem(&loaded) {
        error!(code = "PROFILE_DEVELOPMENT_KEYS", problem = %problem, "refusing to start");
        return ExitCode::from(2);
    }

    let contracts_dir = loaded.resolve(&cfg.contracts.dir);
    let catalog = match hub_contracts::load_dir(&contracts_dir) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                error!(problem = %p, "contract problem");
            }
            return ExitCode::from(2);
        }
    };

    // Mappings are compiled at start so a broken program stops the hub before it takes traffic.
    let mappings_dir = loaded.resolve(&cfg.mappings.dir);
    let mappings = match hub_mapping::MappingSet::load(&mappings_dir, &catalog) {
        Ok(mut set) => {
            set.set_input_limits(cfg.mappings.input_limits());
            info!(mappings = set.mappings.len(), "mappings compiled");
            Arc::new(set)
        }
        Err(problems) => {
            for p in &problems {
                error!(problem = %p, "mapping problem");
            }
            return ExitCode::from(2);
        }
    };

    // Contracts registered into an external registry frame messages with its ids.
    let schema_ids = match &cfg.registry {
        None => std::collections::HashMap::new(),
        Some(r) => match crate::external_registry::register_all(r, &catalog).await {
            Ok(ids) => {
                info!(registry = %r.external_url, subjects = ids.len(), "contracts registered in the external registry");
                ids
            }
            Err(e) => {
                error!(error = %e, "cannot register the contracts in the external registry");
                return ExitCode::from(1);
            }
        },
    };

    // Every contract's id computed once: the fingerprint of a schema costs tens of
    // microseconds, too much to pay per message (docs/performance.md).
    let mut schema_ids = schema_ids;
    for c in &catalog.contracts {
        schema_ids
            .entry(c.declaration.topic.clone())
            .or_insert_with(|| c.schema_id());
    }

    let lifecycle = Lifecycle::new();
    if let Err(e) = lifecycle.stop_on_signals() {
        error!(error = %e, "cannot install signal handlers");
        return ExitCode::from(1);
    }

    let base_dir = loaded.resolve(std::path::Path::new("."));
    let state = match StateStore::connect(&cfg.state, &base_dir).await {
        Ok(s) => s,
        Err(e) => {
            error!(code = e.code(), error = %e, "state store unavailable");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = state
        .heartbeat(&instance_id, env!("CARGO_PKG_VERSION"))
        .await
    {
        error!(code = e.code(), error = %e, "state store refuses writes");
        return ExitCode::from(1);
    }
    info!(
        backend = state.backend().as_str(),
        "state store ready, migrations applied"
    );
    // The message trace is written beside the work, in batches; `state.close()` at the end
    // stores what is still queued.
    let trace_sink = hub_state::TraceSink::start(
        state.clone(),
        &format!("hub:{instance_id}"),
        hub_state::SinkOptions {
            capacity: cfg.trace.queue_capacity,
            ..Default::default()
        },
    );
    let state = state.with_trace_sink(trace_sink);
    // Which configuration this instance runs with is a security-relevant fact: record its
    // digest (not its content: it may hold secrets) and the names of overriding variables.
    let actor = format!("hub:{instance_id}");
    let config_digest = std::fs::read(&loaded.path)
        .map(|b| hub_security::sm::sm3_hex(&b))
        .unwrap_or_default();
    let detail = serde_json::json!({
        "sm3": config_digest,
        "overrides": loaded.overrides.iter().map(|o| o.var.as_str()).collect::<Vec<_>>(),
        "version": crate::version_line(),
    });
    if let Err(e) = state
        .append_audit(
            &actor,
            "config.loaded",
            &loaded.path.display().to_string(),
            &detail,
        )
        .await
    {
        error!(code = e.code(), error = %e, "cannot write the audit log");
        return ExitCode::from(1);
    }

    let producer = match Producer::new(&cfg.bus) {
        Ok(p) => p,
        Err(e) => {
            error!(code = e.code(), error = %e, "cannot create the Kafka producer");
            return ExitCode::from(1);
        }
    };
    let topic_admin = match TopicAdmin::new(&cfg.bus, Duration::from_secs(10)) {
        Ok(a) => a,
        Err(e) => {
            error!(code = e.code(), error = %e, "cannot create the Kafka admin client");
            return ExitCode::from(1);
        }
    };

    let topics_ready = Arc::new(AtomicBool::new(false));
    let mut topic_specs = catalog.topics();
    topic_specs.push(hub_egress::replay_topic_spec());
    lifecycle.spawn(ensure_topics(
        topic_admin,
        topic_specs,
        Arc::clone(&topics_ready),
        lifecycle.clone(),
    ));
    lifecycle.spawn(housekeeping(
        state.clone(),
        instance_id.clone(),
        lifecycle.clone(),
    ));
    lifecycle.spawn(purge_trace(
        state.clone(),
        cfg.trace.retention_days,
        lifecycle.clone(),
    ));
    lifecycle.spawn(purge_receipts(
        state.clone(),
        cfg.state.receipt_retention_days,
        lifecycle.clone(),
    ));

    let listener = match tokio::net::TcpListener::bind(cfg.admin.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(listen = %cfg.admin.listen, error = %e, "cannot open the admin listener");
            return abort_start(&lifecycle, &producer, 1).await;
        }
    };
    // Adapters and partners are checked before anything takes traffic.
    let plan = match crate::partners::load_adapters(&loaded, &mappings, &catalog)
        .and_then(|adapters| crate::partners::plan(&loaded, &adapters))
    {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                error!(problem = %p, "adapter or partner problem");
            }
            return abort_start(&lifecycle, &producer, 2).await;
        }
    };
    let catalog = Arc::new(catalog);
    let admin_state = Arc::new(AdminState {
        instance_id: instance_id.clone(),
        producer: producer.clone(),
        state: state.clone(),
        lifecycle: lifecycle.clone(),
        topics_ready: Arc::clone(&topics_ready),
        registry: Arc::new(hub_contracts::Registry::from_catalog(&catalog)),
        metrics: metrics_handle.clone(),
        bus: cfg.bus.clone(),
        access: cfg.admin.clone(),
    });
    lifecycle.spawn(crate::metrics::sample(
        Arc::clone(&admin_state),
        metrics_handle.clone(),
    ));
    let mut router = admin::router(admin_state);
    if cfg.console.enabled {
        let console = hub_console::Console::new(
            hub_console::Deps {
                instance_id: instance_id.clone(),
                state: state.clone(),
                bus: cfg.bus.clone(),
                catalog: Arc::clone(&catalog),
                producer: producer.clone(),
                metrics: metrics_handle,
                trace: trace_lookup(state.clone(), cfg.bus.clone()),
                topology: topology(cfg, &plan, &mappings),
                egress_group_prefix: cfg.egress.group_prefix.clone(),
            },
            cfg.console.clone(),
        );
        lifecycle.spawn(hub_console::sample(
            Arc::clone(&console),
            lifecycle.token().clone(),
        ));
        router = hub_console::mount(router, console);
        info!(url = %format!("http://{}/console/", cfg.admin.listen), "operators' console enabled");
    }
    let stop = lifecycle.token().clone();
    lifecycle.spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
        if let Err(e) = served {
            error!(error = %e, "admin listener failed");
        }
    });
    // Signed checkpoints of the audit chain: verification from the newest one, and retention.
    match cfg.audit.key(|p| loaded.resolve(p)) {
        Err(e) => {
            error!(error = %e, "cannot read the audit checkpoint key");
            return abort_start(&lifecycle, &producer, 2).await;
        }
        Ok(None) => {}
        Ok(Some(key)) => {
            crate::metrics::audit_verified_by_checkpoints();
            lifecycle.spawn(audit_checkpoints(
                state.clone(),
                key,
                cfg.audit.clone(),
                lifecycle.clone(),
            ));
        }
    }
    let key_ring = match &cfg.gateway {
        None => None,
        Some(gcfg) => match load_keys(gcfg, &loaded, &state, &actor).await {
            Some(r) => Some(r),
            // Without its keys the hub cannot protect personal data: it does not start.
            None => return abort_start(&lifecycle, &producer, 2).await,
        },
    };
    // The file store (`docs/files.md`): one for the whole hub, sealing personal files with
    // the gateway's key ring; interrupted uploads and files of failed pushes swept at start
    // and hourly.
    let files = match &cfg.files {
        None => None,
        Some(section) => {
            let cipher = key_ring.clone().map(hub_security::field::FieldCipher::new);
            match section.open(&base_dir, cipher) {
                Ok(store) => {
                    info!(backend = ?section.backend, "file store ready");
                    lifecycle.spawn(sweep_files(
                        store.clone(),
                        state.clone(),
                        (section.orphan_grace(), section.unreferenced_grace()),
                        lifecycle.clone(),
                    ));
                    Some(store)
                }
                Err(e) => {
                    error!(code = e.code(), error = %e, "cannot open the file store");
                    return abort_start(&lifecycle, &producer, 2).await;
                }
            }
        }
    };
    // Download links of files sent as URLs (`docs/files.md`): signed with the configured
    // secret (never logged), served by the gateway, issued by the egress.
    let download_links = match &cfg.files {
        Some(section) if files.is_some() => match section.download_links(&base_dir) {
            Ok(links) => links,
            Err(e) => {
                error!(code = e.code(), error = %e, "cannot set up download links");
                return abort_start(&lifecycle, &producer, 2).await;
            }
        },
        _ => None,
    };
    if let Some(gcfg) = &cfg.gateway {
        let key_ring = key_ring.clone().expect("loaded with the gateway");
        let sm2_key = gcfg
            .sm2_private_key_file
            .as_ref()
            .map(|p| loaded.resolve(p));
        let gateway = match hub_gateway::Gateway::new(
            gcfg.clone(),
            hub_gateway::KeyFiles {
                key_ring,
                sm2_private_key: sm2_key.as_deref(),
            },
            hub_gateway::Dependencies {
                catalog: Arc::clone(&catalog),
                mappings: Arc::clone(&mappings),
                producer: producer.clone(),
                state: state.clone(),
                actor: actor.clone(),
                schema_ids: schema_ids.clone(),
                auth: plan.auth.clone(),
                config_dir: loaded.resolve(std::path::Path::new(".")),
            },
        ) {
            Ok(g) => Arc::new(match (&files, &download_links) {
                (Some(store), Some(links)) => g
                    .with_files(store.clone(), plan.inbound_files.clone())
                    .with_downloads(store.clone(), links.clone()),
                (Some(store), None) => g.with_files(store.clone(), plan.inbound_files.clone()),
                (None, _) => g,
            }),
            Err(e) => {
                error!(error = %e, "cannot build the gateway");
                return abort_start(&lifecycle, &producer, 2).await;
            }
        };
        let listener = match tokio::net::TcpListener::bind(gcfg.listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(listen = %gcfg.listen, error = %e, "cannot open the gateway listener");
                return abort_start(&lifecycle, &producer, 1).await;
            }
        };
        lifecycle.spawn(hub_gateway::refusals::run(
            Arc::clone(&gateway),
            lifecycle.token().clone(),
        ));
        let router = gateway.router();
        let limits = hub_gateway::server::ConnectionLimits::of(gcfg);
        match &gcfg.tls {
            Some(tls) => {
                let tls = hub_gateway::tls::TlsSection {
                    cert: loaded.resolve(&tls.cert),
                    key: loaded.resolve(&tls.key),
                    check_interval_ms: tls.check_interval_ms,
                    client_ca: tls.client_ca.clone(),
                };
                let cert = match hub_gateway::tls::ReloadingCert::load(&tls) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        error!(error = %e, "cannot load the gateway's TLS certificate");
                        return abort_start(&lifecycle, &producer, 2).await;
                    }
                };
                lifecycle.spawn(hub_gateway::tls::watch(
                    Arc::clone(&cert),
                    Duration::from_millis(tls.check_interval_ms.max(100)),
                    lifecycle.token().clone(),
                ));
                let client_ca = tls.client_ca.as_ref().map(|p| loaded.resolve(p));
                let lc = lifecycle.clone();
                lifecycle.spawn(async move {
                    let served = hub_gateway::tls::serve(
                        listener,
                        cert,
                        client_ca.as_deref(),
                        router,
                        limits,
                        lc.clone(),
                    )
                    .await;
                    if let Err(e) = served {
                        error!(error = %e, "the gateway cannot serve TLS; stopping");
                        lc.stop();
                    }
                });
                info!(listen = %gcfg.listen, "gateway serving HTTPS");
            }
            None => {
                // Graceful: on a signal the listener closes and requests in flight finish,
                // each answered after its produce was acknowledged, before the flush.
                lifecycle.spawn(hub_gateway::server::serve_plain(
                    listener,
                    router,
                    limits,
                    lifecycle.clone(),
                ));
                warn!(listen = %gcfg.listen, "gateway serving plain HTTP: use only locally or behind a TLS-terminating proxy");
            }
        }
    }
    if let Some(ring) = &key_ring {
        let cipher = hub_security::field::FieldCipher::new(ring.clone());
        if !plan.routes.is_empty() {
            let ctx = Arc::new(hub_egress::EgressContext {
                catalog: Arc::clone(&catalog),
                mappings: Arc::clone(&mappings),
                cipher: cipher.clone(),
                producer: producer.clone(),
                state: state.clone(),
                bus: cfg.bus.clone(),
                schema_ids: schema_ids.clone(),
                commit_interval: Duration::from_millis(cfg.egress.commit_interval_ms),
                group_prefix: cfg.egress.group_prefix.clone(),
                files: files.clone(),
                download_links: download_links.clone(),
            });
            // Consumers subscribe only once the topics exist: librdkafka looks for a topic
            // that is missing at subscription only at its next metadata refresh (minutes).
            let (lc, ready, routes) = (lifecycle.clone(), Arc::clone(&topics_ready), plan.routes);
            lifecycle.spawn(async move {
                while !ready.load(Ordering::Acquire) {
                    tokio::select! {
                        () = lc.token().cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
                match hub_egress::start_routes(ctx, routes, &lc) {
                    Ok(names) => info!(routes = ?names, "delivery routes started"),
                    Err(e) => {
                        error!(error = %e, "cannot start the delivery routes; stopping");
                        lc.stop();
                    }
                }
            });
        }
        if !plan.pulls.is_empty() {
            let ctx = Arc::new(hub_poller::PullContext {
                catalog: Arc::clone(&catalog),
                mappings: Arc::clone(&mappings),
                cipher,
                producer: producer.clone(),
                state: state.clone(),
                schema_ids: schema_ids.clone(),
                instance_id: instance_id.clone(),
                lease_ttl: Duration::from_millis(cfg.poller.lease_ttl_ms),
            });
            let jobs = plan.pulls.clone();
            match hub_poller::start_pulls(Arc::clone(&ctx), plan.pulls, &lifecycle) {
                Ok(names) => info!(jobs = ?names, "pull jobs scheduled"),
                Err(e) => {
                    error!(error = %e, "cannot start the pull jobs");
                    return abort_start(&lifecycle, &producer, 2).await;
                }
            }
            // Replays of the jobs' dead letters, read once the replay topic exists.
            let (lc, ready, bus) = (
                lifecycle.clone(),
                Arc::clone(&topics_ready),
                cfg.bus.clone(),
            );
            lifecycle.spawn(async move {
                while !ready.load(Ordering::Acquire) {
                    tokio::select! {
                        () = lc.token().cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
                if let Err(e) = hub_poller::start_replays(ctx, &bus, &jobs, &lc) {
                    error!(code = e.code(), error = %e, "cannot read the pull jobs' replays; stopping");
                    lc.stop();
                }
            });
        }
    }
    // SFTP batch pickups (`docs/files.md`): `hub check` made sure [files] is there.
    if !plan.batches.is_empty() {
        let (Some(ring), Some(store)) = (&key_ring, &files) else {
            error!("batch pickups need [gateway] (its key ring) and [files]");
            return abort_start(&lifecycle, &producer, 2).await;
        };
        let ctx = Arc::new(crate::batches::BatchContext {
            catalog: Arc::clone(&catalog),
            mappings: Arc::clone(&mappings),
            cipher: hub_security::field::FieldCipher::new(ring.clone()),
            producer: producer.clone(),
            state: state.clone(),
            store: store.clone(),
            schema_ids: schema_ids.clone(),
            instance_id: instance_id.clone(),
            base_dir: base_dir.clone(),
        });
        match crate::batches::start_batches(ctx, plan.batches, &lifecycle) {
            Ok(names) => info!(jobs = ?names, "batch pickups scheduled"),
            Err(e) => {
                error!(error = %e, "cannot start the batch pickups");
                return abort_start(&lifecycle, &producer, 2).await;
            }
        }
    }
    info!(admin = %cfg.admin.listen, "hub running");

    let grace = Duration::from_millis(cfg.hub.shutdown_grace_ms);
    let report = lifecycle.drain(Some(&producer), grace).await;
    let detail = serde_json::json!({
        "clean": report.is_clean(),
        "tasks_abandoned": report.tasks_abandoned,
        "records_unflushed": report.records_unflushed,
    });
    if let Err(e) = state
        .append_audit(&actor, "hub.stopped", &instance_id, &detail)
        .await
    {
        warn!(code = e.code(), error = %e, "stop not recorded in the audit log");
    }
    state.close().await;
    if report.is_clean() {
        info!("hub stopped cleanly: in-flight work finished, producer flushed");
        ExitCode::SUCCESS
    } else {
        error!(
            tasks_abandoned = report.tasks_abandoned,
            records_unflushed = report.records_unflushed,
            "hub stopped before all in-flight work finished"
        );
        ExitCode::from(1)
    }
}

/// Loads the field-encryption key ring (unwrapped by the KMS when configured) and records the
/// key load in the audit chain; `None` (logged) when it cannot be loaded.
/// Every `checkpoint_interval_minutes`: verifies the audit chain from its newest signed
/// checkpoint, signs a new one over it when intact, and deletes the records older than the
/// retention that a checkpoint covers. Every replica may run it: a checkpoint already signed at
/// the same record is kept, and a purge is idempotent.
async fn audit_checkpoints(
    state: hub_state::StateStore,
    key: hub_state::CheckpointKey,
    audit: crate::config::AuditSection,
    lifecycle: Lifecycle,
) {
    let stop = lifecycle.token().clone();
    let mut tick =
        tokio::time::interval(Duration::from_secs(audit.checkpoint_interval_minutes * 60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.checkpoint_audit(&key).await {
            Ok(Ok(made)) => {
                crate::metrics::audit_verdict(Ok(hub_state::AuditVerdict {
                    records: 0,
                    problems: Vec::new(),
                    from_checkpoint: made.as_ref().map(|c| c.seq),
                }));
                let keep_ms = i64::from(audit.retention_days) * 86_400_000;
                let before = chrono::Utc::now().timestamp_millis() - keep_ms;
                match state.purge_audit(&key, before).await {
                    Ok(0) => {}
                    Ok(n) => info!(records = n, "audit records past their retention deleted"),
                    Err(e) => warn!(code = e.code(), error = %e, "audit retention not applied"),
                }
            }
            Ok(Err(verdict)) => crate::metrics::audit_verdict(Ok(verdict)),
            Err(e) => crate::metrics::audit_verdict(Err(e)),
        }
    }
}

async fn load_keys(
    gcfg: &hub_gateway::GatewaySection,
    loaded: &Loaded<HubConfig>,
    state: &StateStore,
    actor: &str,
) -> Option<hub_security::field::KeyRing> {
    let key_ring_path = loaded.resolve(&gcfg.key_ring);
    let key_ring = match &gcfg.kms {
        Some(k) => match hub_security::kms::HttpKms::new(
            &k.url,
            &k.app_id,
            &k.hmac_secret,
            k.allow_plain_http,
        ) {
            Ok(kms) => hub_security::kms::load_key_ring(&key_ring_path, Some(&kms)).await,
            Err(e) => Err(e),
        },
        None => {
            hub_security::kms::load_key_ring::<hub_security::kms::HttpKms>(&key_ring_path, None)
                .await
        }
    };
    let key_ring = match key_ring {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot load the field-encryption key ring");
            return None;
        }
    };
    info!(
        current_key = key_ring.current_id(),
        "field-encryption key ring loaded"
    );
    // Key use is a security event: which ring, which current key, unwrapped by whom.
    let detail = serde_json::json!({
        "current": key_ring.current_id(),
        "kms": gcfg.kms.as_ref().map(|k| k.url.clone()),
    });
    if let Err(e) = state
        .append_audit(
            actor,
            "keys.loaded",
            &key_ring_path.display().to_string(),
            &detail,
        )
        .await
    {
        warn!(code = e.code(), error = %e, "key load not recorded in the audit log");
    }
    Some(key_ring)
}

/// Stops a start that cannot complete: the tasks already running end and the producer is
/// flushed before the process exits with `code`.
async fn abort_start(lifecycle: &Lifecycle, producer: &Producer, code: u8) -> ExitCode {
    lifecycle.stop();
    lifecycle
        .drain(Some(producer), Duration::from_secs(5))
        .await;
    ExitCode::from(code)
}

/// Creates the declared topics, retrying while the cluster is unreachable; readiness waits
/// for it. Partition differences are reported, never "fixed".
async fn ensure_topics(
    admin: TopicAdmin,
    specs: Vec<TopicSpec>,
    ready: Arc<AtomicBool>,
    lifecycle: Lifecycle,
) {
    let mut wait = Duration::from_millis(500);
    loop {
        match admin.ensure(&specs).await {
            Ok(outcomes) => {
                for (topic, outcome) in outcomes {
                    match outcome {
                        TopicOutcome::Created => info!(topic, "topic created"),
                        TopicOutcome::Exists => {}
                        TopicOutcome::PartitionsDiffer { declared, actual } => warn!(
                            topic,
                            declared,
                            actual,
                            "topic exists with another partition count; not changed"
                        ),
                    }
                }
                ready.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                warn!(code = e.code(), error = %e, retry_in_ms = wait.as_millis() as u64, "topics not ensured yet");
            }
        }
        tokio::select! {
            () = lifecycle.token().cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Periodic upkeep of the state store.
async fn housekeeping(state: StateStore, instance_id: String, lifecycle: Lifecycle) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tokio::select! {
            () = lifecycle.token().cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = state
            .heartbeat(&instance_id, env!("CARGO_PKG_VERSION"))
            .await
        {
            warn!(code = e.code(), error = %e, "heartbeat not recorded");
        }
        match state.purge_expired_nonces().await {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "expired replay nonces purged"),
            Err(e) => warn!(code = e.code(), error = %e, "nonce purge failed"),
        }
    }
}

/// How often trace events past their retention are purged.
const TRACE_PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// Purges the message trace older than `retention_days`, at start and then hourly. Every
/// replica does it; the deletes are idempotent.
async fn purge_trace(state: StateStore, retention_days: u32, lifecycle: Lifecycle) {
    let mut tick = tokio::time::interval(TRACE_PURGE_EVERY);
    loop {
        tokio::select! {
            () = lifecycle.token().cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = chrono::Utc::now().timestamp_millis() - i64::from(retention_days) * 86_400_000;
        match state.purge_trace_before(before).await {
            Ok(0) => {}
            Ok(n) => info!(
                purged = n,
                retention_days, "message trace past its retention purged"
            ),
            Err(e) => warn!(code = e.code(), error = %e, "message trace purge failed"),
        }
    }
}

/// Purges idempotency receipts first claimed more than `retention_days` ago, at start and then
/// hourly, in bounded slices (`[state] receipt_retention_days`).
async fn purge_receipts(state: StateStore, retention_days: u32, lifecycle: Lifecycle) {
    let mut tick = tokio::time::interval(TRACE_PURGE_EVERY);
    loop {
        tokio::select! {
            () = lifecycle.token().cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = StateStore::receipt_cutoff_ms(retention_days);
        match state.purge_receipts_before(before).await {
            Ok(0) => {}
            Ok(n) => info!(
                purged = n,
                retention_days, "idempotency receipts past their retention purged"
            ),
            Err(e) => warn!(code = e.code(), error = %e, "receipt purge failed"),
        }
    }
}

/// How often the file store is swept.
const FILES_SWEEP_EVERY: Duration = Duration::from_secs(3_600);

/// At start and then hourly: removes the file store's leftovers of interrupted uploads older
/// than the first grace (`FileStore::remove_orphans`), and the files stored for pushes whose
/// record never reached Kafka, held provisional longer than the second
/// (`hub_files::sweep::remove_unreferenced`). Every replica may run it: removals are
/// idempotent and the state store decides which replica removes an unreferenced file.
async fn sweep_files(
    store: hub_files::FileStore,
    state: StateStore,
    (orphan_grace, unreferenced_grace): (Duration, Duration),
    lifecycle: Lifecycle,
) {
    let mut tick = tokio::time::interval(FILES_SWEEP_EVERY);
    loop {
        tokio::select! {
            () = lifecycle.token().cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.remove_orphans(orphan_grace).await {
            Ok(0) => {}
            Ok(n) => info!(
                removed = n,
                "file store: leftovers of interrupted uploads removed"
            ),
            Err(e) => warn!(code = e.code(), error = %e, "file store sweep failed"),
        }
        match hub_files::sweep::remove_unreferenced(&store, &state, unreferenced_grace).await {
            Ok(_) => {}
            Err(e) => {
                warn!(code = e.code(), error = %e, "file store sweep of unreferenced files failed")
            }
        }
    }
}

/// The message trace for the console: [`crate::trace::lookup`] with the consumer-group check.
fn trace_lookup(state: StateStore, bus: hub_bus::BusSection) -> hub_console::TraceLookup {
    Arc::new(move |id: String| {
        let (state, bus) = (state.clone(), bus.clone());
        Box::pin(async move {
            crate::trace::lookup(&state, Some(&bus), &id, crate::trace::DEFAULT_LIMIT)
                .await
                .map_err(|e| (e.code().to_string(), e.to_string()))
        })
    })
}

/// What the console draws: the partners pushing in, the delivery routes with the topic each
/// reads, the pull jobs with the topic each writes.
fn topology(
    cfg: &HubConfig,
    plan: &crate::partners::Plan,
    mappings: &hub_mapping::MappingSet,
) -> hub_console::Topology {
    let topic = |partner: &str, mapping: &str| {
        mappings
            .get(partner, mapping)
            .map(|m| m.contract.clone())
            .unwrap_or_default()
    };
    let mut ingress: Vec<String> = cfg
        .gateway
        .iter()
        .flat_map(|g| g.apps.iter().map(|a| a.partner.clone()))
        .collect();
    ingress.sort();
    ingress.dedup();
    hub_console::Topology {
        ingress_partners: ingress,
        routes: plan
            .routes
            .iter()
            .map(|r| hub_console::Flow {
                route: r.route(),
                partner: r.partner.clone(),
                topic: topic(&r.partner, &r.delivery.mapping),
            })
            .collect(),
        pulls: plan
            .pulls
            .iter()
            .map(|p| hub_console::Flow {
                route: p.route(),
                partner: p.partner.clone(),
                topic: topic(&p.partner, &p.spec.mapping),
            })
            .collect(),
    }
}
