//! The consumer against the real broker, on SQLite and on PostgreSQL: every message lands in
//! the tables exactly once, a second copy of a message is absorbed, a new consumer group reads
//! from the offsets stored in the database, and a replay from the start has no second effect.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use app_kit::on_db;
use common::*;
use hotline_app::kinds::Kind;

const CATCH_UP: Duration = Duration::from_secs(120);

/// The app's ticket tables only (the consumer's own bookkeeping changes with every record).
async fn hotline_tables(db: &app_kit::db::Db) -> String {
    let all = dump(db).await;
    all.split("== app_consumer_offsets")
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_exactly_once_and_replays_have_no_second_effect() {
    for backend in BOTH {
        let topics = fresh_topics().await;
        let feed = Feed::new(&topics);
        let scenario = scenario::produce(&feed, "GDC", 24).await;
        let db = TestDb::create(backend).await;

        // 1. The first run applies everything once; the two copies are absorbed.
        let config = write_config(&db.dir, &db.url, &topics, &unique("hotline-group"));
        let app = hotline_app::start(&load(&config)).await.unwrap();
        wait_caught_up(&app.db, &topics, CATCH_UP).await;
        scenario.check(&app.db).await;
        let stats = app.consumer_stats();
        assert_eq!(
            stats.applied.load(Ordering::Relaxed),
            scenario.all_ids.len() as u64,
            "{backend:?}: every message applied once"
        );
        assert_eq!(
            stats.duplicate.load(Ordering::Relaxed),
            (scenario.records - scenario.all_ids.len()) as u64,
            "{backend:?}: the copies were absorbed"
        );
        let first = hotline_tables(&app.db).await;
        app.stop();
        assert!(app.wait().await, "clean stop");

        // 2. A new consumer group on the same database: Kafka has no offsets for it, the
        //    database has; nothing is read twice. A new message proves the consumer ran.
        let config = write_config(&db.dir, &db.url, &topics, &unique("hotline-other-group"));
        let app = hotline_app::start(&load(&config)).await.unwrap();
        let sentinel = feed
            .send(
                Kind::Dispatched,
                &dispatch(
                    "GDC-SENTINEL",
                    OTHER_UNIT,
                    hub_bus::now_shanghai(),
                    chrono::Duration::hours(1),
                    chrono::Duration::days(1),
                ),
            )
            .await;
        wait_caught_up(&app.db, &topics, CATCH_UP).await;
        let stats = app.consumer_stats();
        assert_eq!(
            stats.snapshot(),
            [1, 0, 0, 0, 0, 0],
            "{backend:?}: only the new message was read (applied, duplicate, rejected, behind, lost race, retried)"
        );
        assert_eq!(
            hotline_tables(&app.db).await,
            first,
            "{backend:?}: tables unchanged"
        );
        app.stop();
        assert!(app.wait().await);

        // 3. The stored offsets are lost (as after restoring an old backup): every record is
        //    read again, and the message ids absorb all of them.
        {
            let db = db.connect().await;
            on_db!(&db, p => sqlx::query("DELETE FROM app_consumer_offsets").execute(p).await.unwrap().rows_affected());
            db.close().await;
        }
        let app = hotline_app::start(&load(&config)).await.unwrap();
        wait_caught_up(&app.db, &topics, CATCH_UP).await;
        let stats = app.consumer_stats();
        assert_eq!(
            stats.snapshot(),
            [0, scenario.records as u64 + 1, 0, 0, 0, 0],
            "{backend:?}: every record read again was a duplicate"
        );
        assert_eq!(
            hotline_tables(&app.db).await,
            first,
            "{backend:?}: tables unchanged"
        );
        let processed: i64 = count(
            &app.db,
            &format!(
                "SELECT COUNT(*) FROM app_processed_messages WHERE message_id = '{}'",
                sentinel.message_id
            ),
        )
        .await;
        assert_eq!(processed, 1);
        app.stop();
        assert!(app.wait().await);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_can_never_apply_is_rejected_with_a_code_and_the_consumer_goes_on() {
    let topics = fresh_topics().await;
    let feed = Feed::new(&topics);
    // Not Avro of the contract, then a good dispatch behind it in the same partition.
    let good = dispatch(
        "GDR0001",
        UNIT,
        hub_bus::now_shanghai(),
        chrono::Duration::hours(1),
        chrono::Duration::days(1),
    );
    let (bad_env, _) = feed.message(Kind::Dispatched, &good);
    feed.send_message(Kind::Dispatched, &bad_env, b"\x00\x00\x00\x00\x01not avro")
        .await;
    let ok = feed.send(Kind::Dispatched, &good).await;

    let db = TestDb::create(Backend::Sqlite).await;
    let config = write_config(&db.dir, &db.url, &topics, &unique("hotline-group"));
    let app = hotline_app::start(&load(&config)).await.unwrap();
    wait_caught_up(&app.db, &topics, CATCH_UP).await;
    let codes: Vec<(String, Option<String>)> = on_db!(&app.db, p => {
        use sqlx::Row;
        sqlx::query("SELECT code, message_id FROM app_rejected_messages")
            .fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    });
    assert_eq!(
        codes,
        vec![(
            "HOTLINE_RECORD_MALFORMED".to_string(),
            Some(bad_env.message_id.to_string())
        )]
    );
    let tickets = count(&app.db, "SELECT COUNT(*) FROM hotline_tickets").await;
    assert_eq!(tickets, 1, "the good record behind it was applied");
    let events = count(
        &app.db,
        &format!(
            "SELECT COUNT(*) FROM hotline_ticket_events WHERE message_id = '{}'",
            ok.message_id
        ),
    )
    .await;
    assert_eq!(events, 1);
    app.stop();
    assert!(app.wait().await);
}
