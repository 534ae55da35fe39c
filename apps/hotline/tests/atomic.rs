//! The consumer's one-transaction rule, record by record, on SQLite and PostgreSQL: a consumer
//! task aborted in the middle of a record (after the app wrote, before the commit) leaves
//! neither the write, nor the message id, nor the offset; a failing handler keeps nothing; a
//! rejected record keeps only its rejection; a record behind the stored offset and a second
//! copy of a message id have no effect.

mod common;

use app_kit::consumer::{apply, HandleError, Handler, Outcome};
use app_kit::db::{Db, Tx};
use common::*;
use hotline_app::store::{self, Event};
use hub_bus::{now_shanghai, Delivery, Envelope};
use tokio::sync::mpsc;

/// What the test handler does after writing its row.
#[derive(Clone, Copy)]
enum Then {
    Commit,
    Stall,
    Retry,
    Reject,
}

struct Writer {
    then: Then,
    written: mpsc::UnboundedSender<()>,
}

impl Handler for Writer {
    async fn handle(
        &self,
        tx: &mut Tx,
        _record: &Delivery,
        envelope: &Envelope,
    ) -> Result<(), HandleError> {
        store::insert_event(
            tx,
            &Event {
                message_id: envelope.message_id.to_string(),
                ticket_no: envelope.object_id.clone(),
                kind: "urged".into(),
                direction: "inbound".into(),
                contract_topic: "hotline.ticket.urged.v1".into(),
                occurred_at: "2026-11-22T09:30:00+08:00".into(),
                occurred_at_ms: 0,
                actor: "test".into(),
                correlation_id: envelope.correlation_id.clone(),
                causation_id: None,
                record: "{}".into(),
                record_masked: "{}".into(),
            },
        )
        .await?;
        let _ = self.written.send(());
        match self.then {
            Then::Commit => Ok(()),
            // The process dies here: the future is never polled again.
            Then::Stall => std::future::pending().await,
            Then::Retry => Err(HandleError::Retry("the database went away".into())),
            Then::Reject => Err(HandleError::Reject {
                code: "TEST_REJECTED",
                reason: "never applicable".into(),
            }),
        }
    }
}

fn record(offset: i64, envelope: &Envelope) -> Delivery {
    Delivery {
        topic: "test.topic".into(),
        partition: 0,
        offset,
        key: Some(envelope.object_id.clone().into_bytes()),
        payload: Some(b"payload".to_vec()),
        headers: Some(envelope.to_headers()),
        envelope: Ok(envelope.clone()),
    }
}

fn envelope(ticket: &str) -> Envelope {
    Envelope::new(
        "hotline.ticket.urged",
        1,
        "hotline12345",
        "test",
        ticket,
        now_shanghai(),
    )
}

/// (events, processed message ids, rejected, stored next offset) in the database.
async fn state(db: &Db) -> (i64, i64, i64, Option<i64>) {
    let offsets = stored_offsets(db).await;
    (
        count(db, "SELECT COUNT(*) FROM hotline_ticket_events").await,
        count(db, "SELECT COUNT(*) FROM app_processed_messages").await,
        count(db, "SELECT COUNT(*) FROM app_rejected_messages").await,
        offsets.get(&("test.topic".to_string(), 0)).copied(),
    )
}

async fn run(db: &Db, then: Then, d: &Delivery) -> Result<Outcome, String> {
    let (written, _rx) = mpsc::unbounded_channel();
    apply(db, "hotline", &Writer { then, written }, d)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_applied_whole_or_not_at_all() {
    for backend in BOTH {
        let test_db = TestDb::create(backend).await;
        let db = test_db.connect().await;
        let first = envelope("GDT0001");

        // Aborted after the handler wrote, before the commit: as if the process died there.
        let (written, mut wrote) = mpsc::unbounded_channel();
        let task = {
            let (db, d) = (db.clone(), record(5, &first));
            tokio::spawn(async move {
                let stall = Writer {
                    then: Then::Stall,
                    written,
                };
                apply(&db, "hotline", &stall, &d).await
            })
        };
        wrote.recv().await.expect("the handler wrote its row");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(
            state(&db).await,
            (0, 0, 0, None),
            "{backend:?}: nothing of an aborted record stays"
        );

        // A handler that fails keeps nothing either; the record will be read again.
        assert!(run(&db, Then::Retry, &record(5, &first)).await.is_err());
        assert_eq!(
            state(&db).await,
            (0, 0, 0, None),
            "{backend:?}: nothing of a failed record stays"
        );

        // Applied: the write, the message id and the offset together.
        assert_eq!(
            run(&db, Then::Commit, &record(5, &first)).await,
            Ok(Outcome::Applied)
        );
        assert_eq!(state(&db).await, (1, 1, 0, Some(6)));

        // Read again from Kafka (behind the stored offset): no effect.
        assert_eq!(
            run(&db, Then::Commit, &record(5, &first)).await,
            Ok(Outcome::Behind)
        );
        // The same message id at a later offset (a second copy): absorbed, offset moves on.
        assert_eq!(
            run(&db, Then::Commit, &record(6, &first)).await,
            Ok(Outcome::Duplicate)
        );
        assert_eq!(state(&db).await, (1, 1, 0, Some(7)));

        // Rejected: the handler's row is gone, the rejection and the offset stay.
        let bad = envelope("GDT0002");
        assert_eq!(
            run(&db, Then::Reject, &record(7, &bad)).await,
            Ok(Outcome::Rejected)
        );
        assert_eq!(state(&db).await, (1, 2, 1, Some(8)));

        db.close().await;
        test_db.drop_db().await;
    }
}
