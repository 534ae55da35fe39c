//! The state store against both real backends: a temporary SQLite file and a fresh PostgreSQL
//! database per test (on the server named by HUB_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres).

use std::future::Future;
use std::time::Duration;

use hub_state::{BackendKind, StateSection, StateStore};
use sqlx::Connection;

/// The versions of the migrations shipped in `migrations/`, which both dialects must have alike.
fn shipped_migrations() -> Vec<i64> {
    let versions = |dialect: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let mut v: Vec<i64> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.split('_').next().unwrap().parse().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    let sqlite = versions("sqlite");
    assert_eq!(
        sqlite,
        versions("postgres"),
        "every migration exists for both dialects"
    );
    sqlite
}

fn admin_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped after it.
struct PgDb {
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> Self {
        let admin = admin_url();
        let name = format!("hub_state_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test at {admin} (set HUB_TEST_POSTGRES_URL): {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop_db(self) {
        let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// Runs `check` against a SQLite store and a PostgreSQL store.
async fn on_both<F, Fut>(check: F)
where
    F: Fn(StateStore, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = StateSection {
        url: format!("sqlite://{}", dir.path().join("state/hub.db").display()),
        max_connections: 4,
        ..Default::default()
    };
    let store = StateStore::connect(&sqlite, dir.path()).await.unwrap();
    assert_eq!(store.backend(), BackendKind::Sqlite);
    assert!(dir.path().join("state/hub.db").exists());
    check(store.clone(), sqlite.url.clone()).await;
    store.close().await;

    let db = PgDb::create().await;
    let pg = StateSection {
        url: db.url.clone(),
        max_connections: 4,
        ..Default::default()
    };
    let store = StateStore::connect(&pg, dir.path()).await.unwrap();
    assert_eq!(store.backend(), BackendKind::Postgres);
    check(store.clone(), pg.url.clone()).await;
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn migrations_apply_once_on_both_backends() {
    on_both(|store, _| async move {
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            shipped_migrations()
        );
        store.heartbeat("hub-a", "0.1.0").await.unwrap();
        store.heartbeat("hub-a", "0.1.1").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn reconnecting_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let section = StateSection {
        url: "sqlite://hub.db".into(),
        max_connections: 2,
        ..Default::default()
    };
    let a = StateStore::connect(&section, dir.path()).await.unwrap();
    a.save_cursor("c", "1").await.unwrap();
    a.close().await;
    let b = StateStore::connect(&section, dir.path()).await.unwrap();
    assert_eq!(b.applied_migrations().await.unwrap(), shipped_migrations());
    assert_eq!(b.cursor("c").await.unwrap().as_deref(), Some("1"));
}

#[tokio::test]
async fn a_nonce_is_accepted_once_within_its_window() {
    on_both(|store, _| async move {
        let w = Duration::from_secs(300);
        assert!(store.claim_nonce("app-1", "n-1", w).await.unwrap());
        assert!(!store.claim_nonce("app-1", "n-1", w).await.unwrap());
        assert!(store.claim_nonce("app-2", "n-1", w).await.unwrap());
        // After its window the same nonce is no longer a replay and may be purged.
        assert!(store
            .claim_nonce("app-1", "short", Duration::from_millis(1))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.purge_expired_nonces().await.unwrap(), 1);
        assert!(store.claim_nonce("app-1", "short", w).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_of_one_nonce_admit_exactly_one() {
    on_both(|store, _| async move {
        let claims = (0..16).map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.claim_nonce("app", "same", Duration::from_secs(60)).await })
        });
        let mut admitted = 0;
        for c in claims {
            if c.await.unwrap().unwrap() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 1);
    })
    .await;
}

#[tokio::test]
async fn cursors_are_saved_and_overwritten() {
    on_both(|store, _| async move {
        assert_eq!(store.cursor("pull.elicense").await.unwrap(), None);
        store
            .save_cursor("pull.elicense", "2026-11-22T08:00:00+08:00")
            .await
            .unwrap();
        store
            .save_cursor("pull.elicense", "2026-11-22T09:00:00+08:00")
            .await
            .unwrap();
        assert_eq!(
            store.cursor("pull.elicense").await.unwrap().as_deref(),
            Some("2026-11-22T09:00:00+08:00")
        );
    })
    .await;
}

#[tokio::test]
async fn a_lease_excludes_other_holders_until_released_or_expired() {
    on_both(|store, _| async move {
        let ttl = Duration::from_secs(30);
        assert!(store.acquire_lease("pull", "hub-a", ttl).await.unwrap());
        assert!(!store.acquire_lease("pull", "hub-b", ttl).await.unwrap());
        assert!(
            store.acquire_lease("pull", "hub-a", ttl).await.unwrap(),
            "renewal"
        );
        store.release_lease("pull", "hub-b").await.unwrap(); // not the holder: no effect
        assert!(!store.acquire_lease("pull", "hub-b", ttl).await.unwrap());
        store.release_lease("pull", "hub-a").await.unwrap();
        assert!(store.acquire_lease("pull", "hub-b", ttl).await.unwrap());

        assert!(store
            .acquire_lease("other", "hub-a", Duration::from_millis(1))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            store.acquire_lease("other", "hub-b", ttl).await.unwrap(),
            "expired lease is taken over"
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_postgres_database_is_a_clear_error() {
    let base = admin_url();
    let base = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(b, _)| b)
        .to_string();
    let section = StateSection {
        url: format!(
            "{base}/hub_state_does_not_exist_{}",
            uuid::Uuid::new_v4().simple()
        ),
        max_connections: 1,
        ..Default::default()
    };
    let err = StateStore::connect(&section, std::path::Path::new("."))
        .await
        .err()
        .expect("connecting to a missing database must fail");
    assert_eq!(err.code(), "STATE_UNAVAILABLE");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Runs one SQL statement on the store's database behind its back (to tamper with it).
async fn raw(url: &str, sql: &str) {
    if url.starts_with("sqlite://") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

async fn append(store: &StateStore, n: usize) {
    for i in 0..n {
        store
            .append_audit(
                "hub:test",
                "config.loaded",
                "ops/hub.toml",
                &serde_json::json!({"sm3": format!("{i:064x}")}),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_audit_chain_verifies_when_intact_even_under_concurrent_appends() {
    on_both(|store, _| async move {
        assert_eq!(
            store.verify_audit().await.unwrap().problems,
            Vec::<String>::new(),
            "empty log"
        );
        append(&store, 3).await;
        let appends = (0..12).map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.append_audit(
                    "hub:b",
                    "auth.signature_invalid",
                    &format!("app-{i}"),
                    &serde_json::json!({}),
                )
                .await
                .unwrap()
            })
        });
        let mut seqs: Vec<i64> = Vec::new();
        for a in appends {
            seqs.push(a.await.unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (4..=15).collect::<Vec<_>>(),
            "every append got its own place in the chain"
        );
        let verdict = store.verify_audit().await.unwrap();
        assert_eq!(verdict.records, 15);
        assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
        let recent = store.recent_audit(2).await.unwrap();
        assert_eq!(recent[0].seq, 15);
        assert_eq!(recent[0].prev_hash, recent[1].hash);
    })
    .await;
}

#[tokio::test]
async fn an_edited_removed_or_truncated_audit_record_is_detected() {
    on_both(|store, url| async move {
        append(&store, 6).await;
        raw(
            &url,
            "UPDATE hub_audit SET detail = '{\"sm3\":\"forged\"}' WHERE seq = 2",
        )
        .await;
        let p = store.verify_audit().await.unwrap().problems;
        assert_eq!(
            p,
            vec!["record 2 was edited: its content does not match its hash".to_string()]
        );

        raw(&url, "DELETE FROM hub_audit WHERE seq = 4").await;
        let p = store.verify_audit().await.unwrap().problems.join("\n");
        assert!(
            p.contains("record 5 follows record 3: records 4–4 were removed"),
            "{p}"
        );
        assert!(
            p.contains("record 5 does not follow its predecessor"),
            "{p}"
        );

        raw(&url, "DELETE FROM hub_audit WHERE seq = 6").await;
        let p = store.verify_audit().await.unwrap().problems.join("\n");
        assert!(
            p.contains("the chain head says the last record is 6, but the log ends at record 5"),
            "{p}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_retried_push_finds_the_first_receipt() {
    use hub_state::Receipt;
    on_both(|store, _| async move {
        let first = store
            .claim_receipt("app", "p-1", "m-1", "t", 30_000)
            .await
            .unwrap();
        assert_eq!(
            first,
            Receipt::Claimed {
                message_id: "m-1".into()
            }
        );
        assert_eq!(
            store
                .claim_receipt("app", "p-1", "m-2", "t", 30_000)
                .await
                .unwrap(),
            Receipt::InProgress
        );
        store.complete_receipt("app", "p-1").await.unwrap();
        assert_eq!(
            store
                .claim_receipt("app", "p-1", "m-3", "t", 30_000)
                .await
                .unwrap(),
            Receipt::Done {
                message_id: "m-1".into(),
                topic: "t".into()
            }
        );
        // A failed attempt releases its claim: the retry takes it over at once, keeping the
        // message id (the failed record may still have reached the broker).
        store
            .claim_receipt("app", "p-2", "m-4", "t", 30_000)
            .await
            .unwrap();
        store.release_receipt("app", "p-2").await.unwrap();
        assert_eq!(
            store
                .claim_receipt("app", "p-2", "m-5", "t", 30_000)
                .await
                .unwrap(),
            Receipt::Claimed {
                message_id: "m-4".into()
            }
        );
        // A pending claim whose producer died is taken over, keeping its message id.
        store
            .claim_receipt("app", "p-3", "m-6", "t", 30_000)
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_receipt("app", "p-3", "m-7", "t", 0)
                .await
                .unwrap(),
            Receipt::Claimed {
                message_id: "m-6".into()
            }
        );
        // Concurrent first pushes: exactly one claims.
        let claims = (0..8).map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.claim_receipt("app", "p-4", &format!("c-{i}"), "t", 30_000)
                    .await
                    .unwrap()
            })
        });
        let mut claimed = 0;
        for c in claims {
            if matches!(c.await.unwrap(), Receipt::Claimed { .. }) {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 1);
    })
    .await;
}

#[tokio::test]
async fn a_trace_is_found_by_message_correlation_or_object_id_and_purged_by_age() {
    use hub_state::TraceEvent;
    use serde_json::json;
    on_both(|store, _| async move {
        let at = |e: TraceEvent, ms: i64| TraceEvent { at_ms: ms, ..e };
        store
            .record_trace(&[
                at(
                    TraceEvent::new("received", "m-1")
                        .correlation("case-1")
                        .object("GD001")
                        .actor("hub:a")
                        .detail(json!({ "app_id": "hotline-test", "bytes": 812 })),
                    1_000,
                ),
                at(
                    TraceEvent::new("produced", "m-1")
                        .correlation("case-1")
                        .object("GD001")
                        .actor("hub:a")
                        .detail(json!({ "topic": "t", "partition": 2, "offset": 41 })),
                    1_010,
                ),
                // A second message of the same ticket, in another case.
                at(
                    TraceEvent::new("received", "m-2")
                        .correlation("case-2")
                        .object("GD001")
                        .actor("hub:a"),
                    2_000,
                ),
                // An event of m-2 that does not name the ticket is still found through it.
                at(TraceEvent::new("delivered", "m-2").actor("hub:b"), 2_500),
                at(
                    TraceEvent::new("rejected", "req-9")
                        .actor("hub:a")
                        .detail(json!({ "code": "AUTH_SIGNATURE_INVALID" })),
                    3_000,
                ),
            ])
            .await
            .unwrap();
        let stages = |r: &hub_state::TraceResult| {
            r.events
                .iter()
                .map(|e| format!("{}:{}", e.event.message_id, e.event.stage))
                .collect::<Vec<_>>()
        };
        let by_message = store.trace("m-1", 100).await.unwrap();
        assert_eq!(stages(&by_message), ["m-1:received", "m-1:produced"]);
        assert_eq!(by_message.events[1].event.detail["offset"], 41);
        assert_eq!(by_message.events[0].event.actor, "hub:a");
        assert!(!by_message.truncated);
        assert_eq!(
            stages(&store.trace("case-2", 100).await.unwrap()),
            ["m-2:received", "m-2:delivered"]
        );
        let by_ticket = store.trace("GD001", 100).await.unwrap();
        assert_eq!(
            stages(&by_ticket),
            [
                "m-1:received",
                "m-1:produced",
                "m-2:received",
                "m-2:delivered"
            ]
        );
        let limited = store.trace("GD001", 3).await.unwrap();
        assert_eq!(limited.events.len(), 3);
        assert!(limited.truncated);
        let rejected = store.trace("req-9", 100).await.unwrap();
        assert_eq!(
            rejected.events[0].event.detail["code"],
            "AUTH_SIGNATURE_INVALID"
        );
        assert_eq!(rejected.events[0].event.object_id, None);
        assert!(store.trace("unknown", 100).await.unwrap().events.is_empty());

        // Retention: everything before 2 000 ms goes, the rest stays.
        assert_eq!(store.purge_trace_before(2_000).await.unwrap(), 2);
        assert!(store.trace("m-1", 100).await.unwrap().events.is_empty());
        assert_eq!(store.trace("GD001", 100).await.unwrap().events.len(), 2);
        assert_eq!(store.purge_trace_before(2_000).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn the_trace_sink_batches_in_the_background_and_drops_rather_than_blocks() {
    use hub_state::{SinkOptions, TraceEvent, TraceSink};
    on_both(|store, _| async move {
        // Normal case: everything recorded is stored, by `close` at the latest.
        let sink = TraceSink::start(store.clone(), "hub:test", SinkOptions::default());
        let traced = store.clone().with_trace_sink(sink.clone());
        for i in 0..50 {
            traced.trace_event(TraceEvent::new("received", format!("s-{i}")).object("GD-S"));
        }
        sink.close().await;
        let found = store.trace("GD-S", 1_000).await.unwrap();
        assert_eq!(found.events.len(), 50);
        assert!(found.events.iter().all(|e| e.event.actor == "hub:test"));
        assert_eq!(sink.dropped(), 0);

        // A queue of 4 with a writer that waits 10 s for a batch: a burst of 1 000 is taken
        // at once (no caller waits), the overflow is counted, and the rest is stored on close.
        let slow = SinkOptions {
            capacity: 4,
            batch: 1_000,
            interval: Duration::from_secs(10),
        };
        let sink = TraceSink::start(store.clone(), "hub:test", slow);
        let started = std::time::Instant::now();
        for i in 0..1_000 {
            sink.record(TraceEvent::new("received", format!("f-{i}")).object("GD-F"));
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "recording never waits: {:?}",
            started.elapsed()
        );
        let dropped = sink.dropped();
        assert!(dropped >= 990, "dropped {dropped}");
        sink.close().await;
        let stored = store.trace("GD-F", 10_000).await.unwrap().events.len() as u64;
        assert_eq!(stored + dropped, 1_000);
        // After close nothing is written and nothing blocks.
        sink.record(TraceEvent::new("received", "late").object("GD-F"));
        assert_eq!(sink.dropped(), dropped + 1);
    })
    .await;
}

#[tokio::test]
async fn operators_and_console_sessions_on_both_backends() {
    on_both(|store, _| async move {
        assert!(store
            .create_operator("alice", "operator", "$argon2id$x")
            .await
            .unwrap());
        assert!(!store
            .create_operator("alice", "admin", "$argon2id$y")
            .await
            .unwrap());
        let a = store.operator("alice").await.unwrap().unwrap();
        assert_eq!((a.role.as_str(), a.disabled), ("operator", false));
        assert_eq!(a.password_hash, "$argon2id$x");
        assert!(store.operator("bob").await.unwrap().is_none());
        // The role is checked by the table, not only by the console.
        assert!(store
            .create_operator("mallory", "root", "$argon2id$z")
            .await
            .is_err());

        let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
        store
            .create_console_session("digest-1", "alice", far)
            .await
            .unwrap();
        let s = store.console_session("digest-1").await.unwrap().unwrap();
        assert_eq!(
            (s.operator.as_str(), s.role.as_str()),
            ("alice", "operator")
        );
        assert_eq!(s.expires_at_ms, far);
        store.touch_console_session("digest-1").await.unwrap();
        // Idle sessions are purged; used ones stay.
        assert_eq!(
            store
                .purge_console_sessions(s.created_at_ms - 1)
                .await
                .unwrap(),
            0
        );
        store
            .create_console_session("digest-2", "alice", far)
            .await
            .unwrap();
        store.delete_console_session("digest-2").await.unwrap();
        assert!(store.console_session("digest-2").await.unwrap().is_none());
        // Disabling an operator ends its sessions.
        assert!(store.set_operator_disabled("alice", true).await.unwrap());
        assert!(store.console_session("digest-1").await.unwrap().is_none());
        assert!(store.operator("alice").await.unwrap().unwrap().disabled);
        assert!(!store.set_operator_disabled("nobody", true).await.unwrap());
        assert_eq!(store.list_operators().await.unwrap().len(), 1);

        // Recent refusals by stage, newest first.
        store
            .record_trace(&[
                hub_state::TraceEvent::new("rejected", "r-1")
                    .detail(serde_json::json!({"code": "A"})),
                hub_state::TraceEvent::new("received", "r-2"),
                hub_state::TraceEvent::new("rejected", "r-3")
                    .detail(serde_json::json!({"code": "B"})),
            ])
            .await
            .unwrap();
        let recent = store.recent_trace_events("rejected", 10).await.unwrap();
        let ids: Vec<&str> = recent.iter().map(|e| e.event.message_id.as_str()).collect();
        assert_eq!(ids, ["r-3", "r-1"]);
    })
    .await;
}

/// Counts rows on the store's database through a connection of its own.
async fn count(url: &str, sql: &str) -> i64 {
    if url.starts_with("sqlite://") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

#[tokio::test]
async fn concurrent_claims_of_distinct_nonces_all_succeed_and_are_then_replays() {
    on_both(|store, _| async move {
        let w = Duration::from_secs(60);
        let claim_all = |store: StateStore| async move {
            let claims: Vec<_> = (0..300)
                .map(|i| {
                    let s = store.clone();
                    tokio::spawn(async move { s.claim_nonce("app", &format!("n-{i}"), w).await })
                })
                .collect();
            let mut out = Vec::new();
            for c in claims {
                out.push(c.await.unwrap().unwrap());
            }
            out
        };
        assert!(claim_all(store.clone()).await.iter().all(|&won| won));
        assert!(claim_all(store.clone()).await.iter().all(|&won| !won));
    })
    .await;
}

#[tokio::test]
async fn one_nonce_claimed_many_times_among_others_admits_exactly_one() {
    on_both(|store, _| async move {
        // The same nonce many times, interleaved with distinct ones, so that copies land in
        // one batch as well as in different batches.
        let claims: Vec<_> = (0..200)
            .map(|i| {
                let s = store.clone();
                let nonce = if i % 2 == 0 {
                    "same".to_string()
                } else {
                    format!("other-{i}")
                };
                tokio::spawn(async move {
                    (
                        i,
                        s.claim_nonce("app", &nonce, Duration::from_secs(60))
                            .await
                            .unwrap(),
                    )
                })
            })
            .collect();
        let mut same_admitted = 0;
        for c in claims {
            let (i, won) = c.await.unwrap();
            if i % 2 == 0 {
                same_admitted += usize::from(won);
            } else {
                assert!(won, "distinct nonce other-{i} refused");
            }
        }
        assert_eq!(same_admitted, 1);
    })
    .await;
}

#[tokio::test]
async fn an_accepted_nonce_is_committed_before_the_claim_returns() {
    on_both(|store, url| async move {
        assert!(store
            .claim_nonce("app", "durable", Duration::from_secs(60))
            .await
            .unwrap());
        // Another connection (another process, or the same file after a crash) sees it at once.
        let sql = "SELECT COUNT(*) FROM hub_nonces WHERE app_id = 'app' AND nonce = 'durable'";
        assert_eq!(count(&url, sql).await, 1);
        let sql = "SELECT COUNT(*) FROM hub_ingress_receipts";
        store
            .claim_receipt("app", "p-durable", "m-1", "t", 30_000)
            .await
            .unwrap();
        assert_eq!(count(&url, sql).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_failed_batch_is_reported_to_every_waiter_and_the_writer_carries_on() {
    on_both(|store, url| async move {
        raw(&url, "ALTER TABLE hub_nonces RENAME TO hub_nonces_away").await;
        let claims: Vec<_> = (0..50)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.claim_nonce("app", &format!("f-{i}"), Duration::from_secs(60))
                        .await
                })
            })
            .collect();
        for c in claims {
            let err = c.await.unwrap().expect_err("the table is gone");
            assert_eq!(err.code(), "STATE_UNAVAILABLE");
        }
        // Nothing of the failed batch was committed; the writer task still runs.
        raw(&url, "ALTER TABLE hub_nonces_away RENAME TO hub_nonces").await;
        assert!(store
            .claim_nonce("app", "f-0", Duration::from_secs(60))
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test]
async fn two_stores_sharing_postgres_accept_each_nonce_once() {
    // Two replicas: two stores (two pools, two writer tasks) on one database.
    let db = PgDb::create().await;
    let section = StateSection {
        url: db.url.clone(),
        max_connections: 4,
        ..Default::default()
    };
    let dir = std::path::Path::new(".");
    let a = StateStore::connect(&section, dir).await.unwrap();
    let b = StateStore::connect(&section, dir).await.unwrap();
    let mut tasks = Vec::new();
    for round in 0..4 {
        for n in 0..40 {
            for store in [&a, &b] {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    // Different orders per round, so batches of the two replicas overlap in
                    // different orders (no deadlock may surface as an error).
                    let n = if round % 2 == 0 { n } else { 39 - n };
                    let won = s
                        .claim_nonce("app", &format!("shared-{n}"), Duration::from_secs(60))
                        .await
                        .unwrap();
                    (n, won)
                }));
            }
        }
    }
    let mut admitted = [0usize; 40];
    for t in tasks {
        let (n, won) = t.await.unwrap();
        admitted[n] += usize::from(won);
    }
    assert!(
        admitted.iter().all(|&k| k == 1),
        "each nonce exactly once: {admitted:?}"
    );
    a.close().await;
    b.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_receipt_key_reused_for_another_route_or_body_is_a_conflict() {
    use hub_state::{Receipt, ReceiptConflict, ReceiptFingerprint};
    on_both(|store, _| async move {
        let first = ReceiptFingerprint {
            route: "p/a",
            body_sm3: "aa",
        };
        let other_body = ReceiptFingerprint {
            route: "p/a",
            body_sm3: "bb",
        };
        let other_route = ReceiptFingerprint {
            route: "p/b",
            body_sm3: "aa",
        };
        let claim = |f: ReceiptFingerprint<'static>, m: &'static str| {
            let s = store.clone();
            async move {
                s.claim_receipt_checked("app", "k-1", f, m, "t", 30_000)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            claim(first, "m-1").await,
            Ok(Receipt::Claimed {
                message_id: "m-1".into()
            })
        );
        // Pending: the same message is in progress, another one is refused.
        assert_eq!(claim(first, "m-2").await, Ok(Receipt::InProgress));
        assert_eq!(
            claim(other_body, "m-3").await,
            Err(ReceiptConflict {
                route_differs: false,
                body_differs: true
            })
        );
        assert_eq!(
            claim(other_route, "m-4").await,
            Err(ReceiptConflict {
                route_differs: true,
                body_differs: false
            })
        );
        store.complete_receipt("app", "k-1").await.unwrap();
        // Done: the same message gets the first answer, another one is still refused.
        assert_eq!(
            claim(first, "m-5").await,
            Ok(Receipt::Done {
                message_id: "m-1".into(),
                topic: "t".into()
            })
        );
        assert!(claim(other_body, "m-6").await.is_err());
        // Released after a failed produce: only the same message takes it over.
        store
            .claim_receipt_checked("app", "k-2", first, "m-7", "t", 30_000)
            .await
            .unwrap()
            .unwrap();
        store.release_receipt("app", "k-2").await.unwrap();
        assert!(store
            .claim_receipt_checked("app", "k-2", other_body, "m-8", "t", 30_000)
            .await
            .unwrap()
            .is_err());
        assert_eq!(
            store
                .claim_receipt_checked("app", "k-2", first, "m-9", "t", 30_000)
                .await
                .unwrap(),
            Ok(Receipt::Claimed {
                message_id: "m-7".into()
            })
        );
        // Concurrent first pushes of one key with different bodies: one claims, the others
        // are conflicts or (same body) in progress.
        let claims: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    let body = if i < 4 { "cc" } else { "dd" };
                    let f = ReceiptFingerprint {
                        route: "p/a",
                        body_sm3: body,
                    };
                    s.claim_receipt_checked("app", "k-3", f, &format!("c-{i}"), "t", 30_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let (mut claimed, mut in_progress, mut conflicts) = (0, 0, 0);
        for c in claims {
            match c.await.unwrap() {
                Ok(Receipt::Claimed { .. }) => claimed += 1,
                Ok(Receipt::InProgress) => in_progress += 1,
                Ok(Receipt::Done { .. }) => panic!("nothing was completed"),
                Err(_) => conflicts += 1,
            }
        }
        assert_eq!((claimed, in_progress, conflicts), (1, 3, 4));
    })
    .await;
}

#[tokio::test]
async fn expired_nonces_and_old_receipts_are_purged_in_slices() {
    on_both(|store, url| async move {
        // More than one slice of expired nonces, and one that has not expired.
        let past = chrono::Utc::now().timestamp_millis() - 1_000;
        let values: Vec<String> = (0..1_234)
            .map(|i| format!("('app', 'old-{i}', {past})"))
            .collect();
        raw(
            &url,
            &format!(
                "INSERT INTO hub_nonces (app_id, nonce, expires_at_ms) VALUES {}",
                values.join(",")
            ),
        )
        .await;
        assert!(store
            .claim_nonce("app", "fresh", Duration::from_secs(60))
            .await
            .unwrap());
        assert_eq!(store.purge_expired_nonces().await.unwrap(), 1_234);
        assert_eq!(count(&url, "SELECT COUNT(*) FROM hub_nonces").await, 1);

        store
            .claim_receipt("app", "old", "m-1", "t", 30_000)
            .await
            .unwrap();
        // A released receipt keeps its first claim time for the retention.
        store.release_receipt("app", "old").await.unwrap();
        assert_eq!(
            store
                .purge_receipts_before(StateStore::receipt_cutoff_ms(1))
                .await
                .unwrap(),
            0
        );
        let later = chrono::Utc::now().timestamp_millis() + 1;
        assert_eq!(store.purge_receipts_before(later).await.unwrap(), 1);
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM hub_ingress_receipts").await,
            0
        );
    })
    .await;
}

#[tokio::test]
async fn signed_checkpoints_keep_audit_verification_incremental_through_retention() {
    use hub_state::CheckpointKey;
    on_both(|store, url| async move {
        let key = CheckpointKey::new(b"test-audit-checkpoint-key-0123".to_vec()).unwrap();
        assert!(CheckpointKey::new(b"short".to_vec()).is_err());
        assert_eq!(
            store.checkpoint_audit(&key).await.unwrap(),
            Ok(None),
            "empty log"
        );
        append(&store, 5).await;
        let cp = store
            .checkpoint_audit(&key)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((cp.seq, cp.key_id.as_str()), (5, key.id()));
        append(&store, 3).await;
        let v = store.verify_audit_with(Some(&key)).await.unwrap();
        assert_eq!(
            (v.records, v.from_checkpoint),
            (3, Some(5)),
            "only 6–8 read"
        );
        assert!(v.problems.is_empty(), "{:?}", v.problems);

        // Retention deletes what the checkpoint covers, never after it; verification from the
        // checkpoint stays complete.
        assert_eq!(store.purge_audit(&key, i64::MAX).await.unwrap(), 5);
        let v = store.verify_audit_with(Some(&key)).await.unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.records, 3);
        let p = store.verify_audit().await.unwrap().problems.join("\n");
        assert!(
            p.contains("records 1–5 were removed"),
            "without the key: {p}"
        );
        // A second checkpoint replaces the first.
        let cp = store
            .checkpoint_audit(&key)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(cp.seq, 8);
        assert_eq!(store.purge_audit(&key, i64::MAX).await.unwrap(), 3);
        append(&store, 4).await;
        assert!(store
            .verify_audit_with(Some(&key))
            .await
            .unwrap()
            .problems
            .is_empty());

        // Tampering after the checkpoint is still named, record by record.
        raw(&url, "UPDATE hub_audit SET detail = '{}' WHERE seq = 10").await;
        raw(&url, "DELETE FROM hub_audit WHERE seq = 11").await;
        let p = store
            .verify_audit_with(Some(&key))
            .await
            .unwrap()
            .problems
            .join("\n");
        assert!(p.contains("record 10 was edited"), "{p}");
        assert!(
            p.contains("record 12 follows record 10: records 11–11 were removed"),
            "{p}"
        );
        // No checkpoint is signed over a broken chain.
        assert!(store.checkpoint_audit(&key).await.unwrap().is_err());

        // An altered checkpoint is named and not trusted; another key's signature neither.
        raw(
            &url,
            "UPDATE hub_audit_checkpoints SET hash = 'x' WHERE seq = 8",
        )
        .await;
        let v = store.verify_audit_with(Some(&key)).await.unwrap();
        assert_eq!(v.from_checkpoint, None);
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("checkpoint at record 8 does not verify")),
            "{:?}",
            v.problems
        );
        let other = CheckpointKey::new(b"another-audit-key-0123456789".to_vec()).unwrap();
        assert_eq!(store.purge_audit(&other, i64::MAX).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn failed_logins_are_counted_per_source_and_name_across_replicas() {
    on_both(|store, url| async move {
        // A second replica on the same store.
        let dir = tempfile::tempdir().unwrap();
        let other = StateStore::connect(
            &StateSection {
                url,
                max_connections: 2,
                ..Default::default()
            },
            dir.path(),
        )
        .await
        .unwrap();
        let block = |n: i64| if n >= 3 { 60_000 } else { 0 };
        assert_eq!(
            store
                .login_blocked_until("10.0.0.9", "admin")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .record_login_failure("10.0.0.9", "admin", 3_600_000, block)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            other
                .record_login_failure("10.0.0.9", "admin", 3_600_000, block)
                .await
                .unwrap(),
            2,
            "the other replica counts in the same row"
        );
        assert_eq!(
            other
                .login_blocked_until("10.0.0.9", "admin")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .record_login_failure("10.0.0.9", "admin", 3_600_000, block)
                .await
                .unwrap(),
            3
        );
        assert!(other
            .login_blocked_until("10.0.0.9", "admin")
            .await
            .unwrap()
            .is_some());
        // The operator from another source, and another name from the same source: not blocked.
        assert_eq!(
            other
                .login_blocked_until("10.0.0.7", "admin")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            other
                .login_blocked_until("10.0.0.9", "zhang")
                .await
                .unwrap(),
            None
        );
        // Old failures are forgotten; a success clears the row.
        assert_eq!(
            store
                .record_login_failure("10.0.0.9", "admin", -1, block)
                .await
                .unwrap(),
            1,
            "a failure older than the memory starts again from one"
        );
        other
            .clear_login_failures("10.0.0.9", "admin")
            .await
            .unwrap();
        assert_eq!(
            store
                .login_blocked_until("10.0.0.9", "admin")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .record_login_failure("10.0.0.9", "admin", 3_600_000, block)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.purge_login_failures(i64::MAX).await.unwrap(), 1);
        other.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_remote_batch_file_is_claimed_once_even_by_concurrent_runners() {
    on_both(|store, _| async move {
        let id = "sm3:66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
        assert_eq!(
            store.file_pickup("recon", "a.csv", 10, 1700).await.unwrap(),
            None
        );
        let claims = futures_claims(&store, id).await;
        assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");
        let p = store
            .file_pickup("recon", "a.csv", 10, 1700)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.file_id.as_str(), p.state.as_str()), (id, "claimed"));
        store
            .advance_file_pickup("recon", "a.csv", 10, 1700, "handled")
            .await
            .unwrap();
        assert_eq!(
            store
                .file_pickup("recon", "a.csv", 10, 1700)
                .await
                .unwrap()
                .unwrap()
                .state,
            "handled"
        );
        // A replaced file (other size or time) and another job's file are new files.
        assert!(store
            .claim_file_pickup("recon", "a.csv", 11, 1700, id)
            .await
            .unwrap());
        assert!(store
            .claim_file_pickup("recon", "a.csv", 10, 1701, id)
            .await
            .unwrap());
        assert!(store
            .claim_file_pickup("other", "a.csv", 10, 1700, id)
            .await
            .unwrap());
    })
    .await;
}

async fn futures_claims(store: &StateStore, id: &str) -> Vec<bool> {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = store.clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            s.claim_file_pickup("recon", "a.csv", 10, 1700, &id)
                .await
                .unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
