//! The command line: `hub serve | check | adapter | topics | contracts | audit | dlq | trace | sign |
//! version`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use hub_bus::admin::{TopicAdmin, TopicOutcome, TopicSpec};
use hub_bus::BusError;
use hub_config::Loaded;

use crate::config::HubConfig;

/// 政务集成枢纽 / the integration hub.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Keys can be overridden with HUB_<SECTION>__<KEY> variables.
    #[arg(
        long,
        short,
        env = "HUB_CONFIG",
        default_value = "hub.toml",
        global = true
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub until SIGTERM or SIGINT.
    Serve,
    /// Check the configuration, contracts and mappings (running every golden fixture); print
    /// every problem with file, line and key.
    Check,
    /// Partner adapters: `hub adapter new <name>` writes a new partner's skeleton (no
    /// configuration file needed).
    Adapter {
        #[command(subcommand)]
        action: crate::adapter_new::AdapterAction,
    },
    /// List or create the topics the contracts declare.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Check the contracts; with --against, also their compatibility with a git ref.
    Contracts {
        #[command(subcommand)]
        action: ContractsAction,
    },
    /// The SM3-chained audit log in the state store.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Sign a request as a partner would (docs/security.md), for trying the gateway with curl:
    /// `hub sign … | curl -K - --data-binary @BODY URL`.
    Sign {
        #[arg(long)]
        app_id: String,
        /// HMAC-SM3 secret; or give --sm2-private-key.
        #[arg(long, env = "HUB_SIGN_SECRET")]
        secret: Option<String>,
        /// SM2 private key, 64 hex digits.
        #[arg(long, env = "HUB_SIGN_SM2_PRIVATE_KEY")]
        sm2_private_key: Option<String>,
        #[arg(long, default_value = "POST")]
        method: String,
        /// Path and optional query, e.g. /v1/hotline12345/dispatch_json?lang=zh
        #[arg(long)]
        path: String,
        /// File holding the exact body bytes to send.
        #[arg(long)]
        body: PathBuf,
        /// A header to send and sign, `Name: value` (repeatable); `X-Partner-Message-Id`,
        /// `X-Correlation-Id` and the `X-Hub-Encryption*` headers must be signed.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Dead letters: list, show, replay, discard (replays and discards are audited).
    Dlq {
        #[command(subcommand)]
        action: crate::dlq_cli::DlqAction,
    },
    /// Where a message went: every step the hub recorded for a message id, correlation id,
    /// ticket or licence number, and the consumer groups that have read it (docs/trace.md).
    Trace {
        /// A message id, a correlation id, a request id or the partner's object id.
        id: String,
        /// Events shown at most.
        #[arg(long, default_value_t = crate::trace::DEFAULT_LIMIT)]
        limit: i64,
        /// Do not ask Kafka which consumer groups have read the produced records.
        #[arg(long)]
        no_consumers: bool,
        /// The whole answer as one JSON object (as the admin API gives it).
        #[arg(long)]
        json: bool,
    },
    /// Operator accounts of the console (docs/console.md); passwords are read from stdin.
    Operator {
        #[command(subcommand)]
        action: crate::operator_cli::OperatorAction,
    },
    /// Print the version, the git commit and the librdkafka version.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the chain (from the newest signed checkpoint when `audit.checkpoint_key_file`
    /// is set); exit 1 and name every break if a record was edited, removed, inserted or
    /// reordered, or a checkpoint does not verify.
    Verify,
    /// Print the newest records.
    Tail {
        #[arg(long, short, default_value_t = 20)]
        n: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractsAction {
    /// Load and check every contract; with --against, compare each with the same topic's
    /// contract at that git ref under its declared compatibility mode.
    Check {
        /// Folder of the contracts (does not need a configuration file).
        #[arg(long, default_value = "contracts/schemas")]
        dir: PathBuf,
        /// A git ref to compare with, e.g. HEAD~1 or origin/main.
        #[arg(long)]
        against: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Compare the declared topics with the cluster.
    List,
    /// Create the declared topics that are missing.
    Ensure,
}

/// Exit codes: 0 success, 1 the command found problems or failed, 2 the configuration is
/// unusable.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("{}", crate::version_line());
            ExitCode::SUCCESS
        }
        Command::Check => check(&cli.config),
        Command::Adapter { action } => crate::adapter_new::run(action),
        Command::Contracts {
            action: ContractsAction::Check { dir, against },
        } => contracts_check(&dir, against.as_deref()),
        Command::Sign {
            app_id,
            secret,
            sm2_private_key,
            method,
            path,
            body,
            headers,
        } => sign(
            &app_id,
            secret,
            sm2_private_key,
            &method,
            &path,
            &body,
            &headers,
        ),
        Command::Audit { action } => with_config(&cli.config, |loaded| {
            runtime().block_on(audit(loaded, action))
        }),
        Command::Serve => with_config(&cli.config, |loaded| {
            runtime().block_on(crate::serve::serve(loaded))
        }),
        Command::Topics { action } => with_config(&cli.config, |loaded| {
            runtime().block_on(topics(loaded, action))
        }),
        Command::Dlq { action } => with_config(&cli.config, |loaded| {
            runtime().block_on(crate::dlq_cli::run(loaded, action))
        }),
        Command::Operator { action } => with_config(&cli.config, |loaded| {
            runtime().block_on(crate::operator_cli::run(loaded, action))
        }),
        Command::Trace {
            id,
            limit,
            no_consumers,
            json,
        } => with_config(&cli.config, |loaded| {
            runtime().block_on(crate::trace_cli::run(
                loaded,
                &id,
                limit,
                json,
                !no_consumers,
            ))
        }),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn load(path: &Path) -> Result<Loaded<HubConfig>, hub_config::ConfigErrors> {
    hub_config::load::<HubConfig>(path, "HUB")
}

fn with_config(path: &Path, f: impl FnOnce(Loaded<HubConfig>) -> ExitCode) -> ExitCode {
    match load(path) {
        Ok(loaded) => f(loaded),
        Err(errors) => {
            eprintln!("配置有误 / the configuration has problems:");
            for p in &errors.0 {
                eprintln!("  {p}");
            }
            ExitCode::from(2)
        }
    }
}

/// `hub check`: every problem of the configuration, the contracts and the mappings, and every
/// mapping's golden fixtures, then a verdict.
fn check(path: &Path) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let mut summary = String::new();
    match load(path) {
        Err(errors) => problems.extend(errors.0.iter().map(ToString::to_string)),
        Ok(loaded) => {
            let dir = loaded.resolve(&loaded.config.contracts.dir);
            match hub_contracts::load_dir(&dir) {
                Ok(catalog) => {
                    summary = format!(
                        "{} contracts, {} topics",
                        catalog.contracts.len(),
                        catalog.topics().len()
                    );
                    problems.extend(crate::profile::key_ring_problem(&loaded));
                    if let Some(g) = &loaded.config.gateway {
                        let ring = loaded.resolve(&g.key_ring);
                        if let Err(e) = hub_security::kms::check_key_ring_file(&ring) {
                            problems
                                .push(format!("{}: key `gateway.key_ring`: {e}", path.display()));
                        }
                    }
                    let mappings_dir = loaded.resolve(&loaded.config.mappings.dir);
                    match hub_mapping::MappingSet::load(&mappings_dir, &catalog) {
                        Ok(set) => {
                            let outcomes = hub_mapping::run_fixtures(&set, &catalog);
                            let failed: Vec<_> =
                                outcomes.iter().filter(|o| o.failure.is_some()).collect();
                            problems.extend(failed.iter().map(|o| {
                                format!(
                                    "{}: mapping {} fixture `{}`: {}",
                                    o.path.display(),
                                    o.mapping,
                                    o.case,
                                    o.failure.as_deref().unwrap_or_default()
                                )
                            }));
                            summary.push_str(&format!(
                                ", {} mappings, {} fixtures",
                                set.mappings.len(),
                                outcomes.len()
                            ));
                            match crate::partners::load_adapters(&loaded, &set, &catalog) {
                                Ok(adapters) => {
                                    for w in &adapters.warnings {
                                        eprintln!("警告 / warning: {w}");
                                    }
                                    summary.push_str(&format!(
                                        ", {} adapters",
                                        adapters.adapters.len()
                                    ));
                                    match crate::partners::plan(&loaded, &adapters) {
                                        Ok(plan) => summary.push_str(&format!(
                                            ", {} delivery routes, {} pull jobs",
                                            plan.routes.len(),
                                            plan.pulls.len()
                                        )),
                                        Err(p) => problems.extend(p),
                                    }
                                }
                                Err(p) => problems.extend(p),
                            }
                        }
                        Err(p) => problems.extend(p.iter().map(ToString::to_string)),
                    }
                }
                Err(p) => problems.extend(p.iter().map(ToString::to_string)),
            }
        }
    }
    if problems.is_empty() {
        println!("检查通过 / check passed: {} ({summary})", path.display());
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("发现 {n} 个问题 / {n} problem(s) found", n = problems.len());
        ExitCode::from(1)
    }
}

/// `hub topics list|ensure`.
async fn topics(loaded: Loaded<HubConfig>, action: TopicsAction) -> ExitCode {
    let dir = loaded.resolve(&loaded.config.contracts.dir);
    let catalog = match hub_contracts::load_dir(&dir) {
        Ok(c) => c,
        Err(p) => {
            for p in &p {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    let mut specs = catalog.topics();
    specs.push(hub_egress::replay_topic_spec());
    let admin = match TopicAdmin::new(&loaded.config.bus, Duration::from_secs(10)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let result = match action {
        TopicsAction::List => list_topics(&admin, &specs).await,
        TopicsAction::Ensure => ensure_topics(&admin, &specs).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Prints declared against actual partitions; `Ok(false)` when a topic is missing or differs.
async fn list_topics(admin: &TopicAdmin, specs: &[TopicSpec]) -> Result<bool, BusError> {
    let existing = admin.existing().await?;
    println!("{:<48} {:>8} {:>8}", "topic", "declared", "actual");
    let mut ok = true;
    for s in specs {
        let actual = existing.get(&s.name);
        ok &= actual == Some(&s.partitions);
        println!(
            "{:<48} {:>8} {:>8}",
            s.name,
            s.partitions,
            actual.map_or("missing".to_string(), i32::to_string)
        );
    }
    Ok(ok)
}

/// Creates missing topics; `Ok(false)` when an existing topic has other partitions.
async fn ensure_topics(admin: &TopicAdmin, specs: &[TopicSpec]) -> Result<bool, BusError> {
    let mut ok = true;
    for (name, outcome) in admin.ensure(specs).await? {
        let text = match outcome {
            TopicOutcome::Created => "created".to_string(),
            TopicOutcome::Exists => "exists".to_string(),
            TopicOutcome::PartitionsDiffer { declared, actual } => {
                ok = false;
                format!("exists with {actual} partitions, {declared} declared: change it by hand")
            }
        };
        println!("{name:<48} {text}");
    }
    Ok(ok)
}

/// `hub contracts check [--against REF]`.
fn contracts_check(dir: &Path, against: Option<&str>) -> ExitCode {
    let Some(reference) = against else {
        return match hub_contracts::load_dir(dir) {
            Ok(c) => {
                println!(
                    "契约检查通过 / contracts OK: {} contracts in {}",
                    c.contracts.len(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                ExitCode::from(1)
            }
        };
    };
    match crate::contracts_gate::check_against(dir, reference) {
        Ok((catalog, problems)) if problems.is_empty() => {
            println!(
                "兼容性检查通过 / compatible with {reference}: {} contracts in {}",
                catalog.contracts.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Ok((_, problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "发现 {n} 处不兼容 / {n} incompatible change(s) against {reference}",
                n = problems.len()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Verifies the chain (from the newest signed checkpoint when there is a key) and names every
/// break.
async fn verify_audit_chain(
    store: &hub_state::StateStore,
    key: Option<&hub_state::CheckpointKey>,
) -> ExitCode {
    let from = |v: &hub_state::AuditVerdict| match v.from_checkpoint {
        Some(seq) => format!(" after the signed checkpoint at record {seq}"),
        None => String::new(),
    };
    match store.verify_audit_with(key).await {
        Ok(v) if v.problems.is_empty() => {
            println!(
                "审计链完整 / audit chain intact: {} records{}",
                v.records,
                from(&v)
            );
            ExitCode::SUCCESS
        }
        Ok(v) => {
            for p in &v.problems {
                eprintln!("{p}");
            }
            eprintln!(
                "审计链被篡改 / audit chain broken: {} problem(s) in {} records{}",
                v.problems.len(),
                v.records,
                from(&v)
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `hub audit verify|tail`.
async fn audit(loaded: Loaded<HubConfig>, action: AuditAction) -> ExitCode {
    let base = loaded.resolve(Path::new("."));
    let store = match hub_state::StateStore::connect(&loaded.config.state, &base).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let code = match action {
        AuditAction::Verify => match loaded.config.audit.key(|p| loaded.resolve(p)) {
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
            Ok(key) => verify_audit_chain(&store, key.as_ref()).await,
        },
        AuditAction::Tail { n } => match store.recent_audit(n).await {
            Ok(records) => {
                for r in records.iter().rev() {
                    println!(
                        "{:>6} {} {:<24} {:<28} {} {}",
                        r.seq, r.at_ms, r.actor, r.action, r.subject, r.detail
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
    };
    store.close().await;
    code
}

/// `hub sign`: the signature headers, and the signed extra headers, as a curl config
/// (`header = "…"` lines).
fn sign(
    app_id: &str,
    secret: Option<String>,
    sm2_private_key: Option<String>,
    method: &str,
    path_and_query: &str,
    body: &Path,
    extra: &[String],
) -> ExitCode {
    let mut extra_headers = Vec::new();
    for h in extra {
        match h.split_once(':') {
            Some((n, v)) if !n.trim().is_empty() => extra_headers.push((n.trim(), v.trim())),
            _ => {
                eprintln!("--header `{h}`: write `Name: value`");
                return ExitCode::from(2);
            }
        }
    }
    use hub_security::signing::SigningCredential;
    let credential = match (secret, sm2_private_key) {
        (Some(s), None) => SigningCredential::HmacSm3 {
            secret: s.into_bytes(),
        },
        (None, Some(k)) => match hub_security::sm::Sm2PrivateKey::from_hex(&k) {
            Ok(key) => SigningCredential::Sm2 { key },
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("give exactly one of --secret and --sm2-private-key");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(body) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", body.display());
            return ExitCode::from(2);
        }
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    for (name, value) in
        credential.sign_request_with(app_id, method, path, query, &bytes, now_ms, &extra_headers)
    {
        println!("header = \"{name}: {value}\"");
    }
    for (name, value) in &extra_headers {
        println!("header = \"{name}: {value}\"");
    }
    ExitCode::SUCCESS
}
