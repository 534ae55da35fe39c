//! The app as a child process, killed with SIGKILL in the middle of a stream and started again,
//! ends with exactly the tables of a run that was never interrupted (SQLite and PostgreSQL).

mod common;

use std::time::Duration;

use common::process::App;
use common::*;
use nix::sys::signal::Signal;

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_stream_and_restarted_leaves_the_tables_as_an_uninterrupted_run() {
    for backend in BOTH {
        let topics = fresh_topics().await;
        let feed = Feed::new(&topics);
        let scenario = scenario::produce(&feed, "GDK", 150).await;
        assert!(scenario.records > 250, "a long enough stream");

        // The reference: one run, never interrupted.
        let reference_db = TestDb::create(backend).await;
        let config = write_config(
            &reference_db.dir,
            &reference_db.url,
            &topics,
            &unique("hotline-ref"),
        );
        let mut app = App::start(&config);
        // Connect only once the app has migrated (two migrators on one SQLite file would race).
        app.wait_log("database connected", 1).await;
        let db = reference_db.connect().await;
        wait_caught_up(&db, &topics, WAIT).await;
        app.signal(Signal::SIGTERM);
        assert!(app.exit_status().await.success(), "clean stop");
        scenario.check(&db).await;
        let reference = dump(&db).await;
        db.close().await;

        // Killed twice, each time while the rest of the stream is still to be read: after 40
        // records, then after 60 more, with the same group and database.
        let crash_db = TestDb::create(backend).await;
        let group = unique("hotline-crash");
        let config = write_config(&crash_db.dir, &crash_db.url, &topics, &group);
        let mut db = None;
        let mut applied_before = 0;
        for records in [40, 60] {
            let mut app = App::start(&config);
            app.wait_log("\"record done\"", records).await;
            app.signal(Signal::SIGKILL);
            let status = app.exit_status().await;
            assert!(!status.success(), "killed, not stopped");
            if db.is_none() {
                db = Some(crash_db.connect().await);
            }
            let applied = count(
                db.as_ref().unwrap(),
                "SELECT COUNT(*) FROM app_processed_messages",
            )
            .await;
            assert!(
                applied > applied_before && (applied as usize) < scenario.all_ids.len(),
                "{backend:?}: killed mid-stream ({applied} of {} applied)",
                scenario.all_ids.len()
            );
            applied_before = applied;
        }
        let db = db.unwrap();

        // Started again, same group and database: it finishes the stream.
        let app = App::start(&config);
        wait_caught_up(&db, &topics, WAIT).await;
        app.signal(Signal::SIGTERM);
        assert!(
            app.exit_status().await.success(),
            "clean stop after the restart"
        );
        scenario.check(&db).await;
        let after_crash = dump(&db).await;
        db.close().await;
        assert_eq!(
            after_crash, reference,
            "{backend:?}: the tables after a crash and restart differ from an uninterrupted run"
        );
        reference_db.drop_db().await;
        crash_db.drop_db().await;
    }
}
