//! A stream of platform events over many tickets, with what the app's tables must hold after
//! it: urgings sent highest count first, visits sent newest first, closings with and without
//! the handling unit, redispatches, an urging sent before its ticket's dispatch, other units'
//! tickets, an orphan closing, and two messages sent twice with the same message id.

use std::collections::{BTreeMap, BTreeSet};

use app_kit::db::Db;
use app_kit::on_db;
use chrono::Duration as Span;
use hotline_app::kinds::Kind;
use hub_bus::now_shanghai;
use sqlx::Row;

use super::{close, dispatch, urge, visit, Feed, OTHER_UNIT, UNIT};

/// What one ticket must look like at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub status: String,
    pub urge_count: i64,
    pub satisfaction: Option<String>,
    pub dispatch_count: i64,
}

/// What was produced, and what it must lead to.
pub struct Scenario {
    pub tickets: BTreeMap<String, Expect>,
    /// Message ids the app keeps as ticket events (our unit's, and the orphan closing).
    pub event_ids: BTreeSet<String>,
    /// Every distinct message id produced.
    pub all_ids: BTreeSet<String>,
    /// Records produced, copies included.
    pub records: usize,
}

/// Produces the scenario over `n` tickets; ticket numbers start with `prefix`.
pub async fn produce(feed: &Feed, prefix: &str, n: usize) -> Scenario {
    let base = now_shanghai() - Span::hours(2);
    let mut s = Scenario {
        tickets: BTreeMap::new(),
        event_ids: BTreeSet::new(),
        all_ids: BTreeSet::new(),
        records: 0,
    };
    let keep = |s: &mut Scenario, id: String, ours: bool| {
        s.records += 1;
        if ours {
            s.event_ids.insert(id.clone());
        }
        s.all_ids.insert(id);
    };
    for i in 0..n {
        let no = format!("{prefix}{i:04}");
        let at = base + Span::minutes(i as i64);
        let mut expect = Expect {
            status: "DISPATCHED".into(),
            urge_count: 0,
            satisfaction: None,
            dispatch_count: 1,
        };
        // An urging read before its dispatch waits for it.
        if i % 6 == 1 {
            let e = feed
                .send(Kind::Urged, &urge(&no, 1, at + Span::minutes(1)))
                .await;
            keep(&mut s, e.message_id.to_string(), true);
            expect.urge_count = 1;
        }
        let first = dispatch(&no, UNIT, at, Span::hours(1), Span::days(5));
        let (env, payload) = feed.message(Kind::Dispatched, &first);
        feed.send_message(Kind::Dispatched, &env, &payload).await;
        keep(&mut s, env.message_id.to_string(), true);
        if i == 0 {
            // The same message again (a retried produce): absorbed.
            feed.send_message(Kind::Dispatched, &env, &payload).await;
            s.records += 1;
        }
        if i % 3 == 0 {
            for count in [2, 1] {
                let e = feed
                    .send(
                        Kind::Urged,
                        &urge(&no, count, at + Span::minutes(10 + i64::from(count))),
                    )
                    .await;
                keep(&mut s, e.message_id.to_string(), true);
            }
            expect.urge_count = 2;
            if i == 3 {
                let (env, payload) =
                    feed.message(Kind::Urged, &urge(&no, 3, at + Span::minutes(20)));
                feed.send_message(Kind::Urged, &env, &payload).await;
                feed.send_message(Kind::Urged, &env, &payload).await;
                keep(&mut s, env.message_id.to_string(), true);
                s.records += 1;
                expect.urge_count = 3;
            }
        }
        if i % 4 == 0 {
            for (sat, minutes) in [("DISSATISFIED", 40), ("SATISFIED", 30)] {
                let e = feed
                    .send(Kind::Visited, &visit(&no, sat, at + Span::minutes(minutes)))
                    .await;
                keep(&mut s, e.message_id.to_string(), true);
            }
            expect.satisfaction = Some("DISSATISFIED".into());
        }
        if i % 7 == 0 {
            let again = dispatch(
                &no,
                UNIT,
                at + Span::minutes(30),
                Span::hours(1),
                Span::days(6),
            );
            let e = feed.send(Kind::Dispatched, &again).await;
            keep(&mut s, e.message_id.to_string(), true);
            expect.dispatch_count = 2;
        }
        if i % 5 == 0 {
            let e = feed
                .send(
                    Kind::Closed,
                    &close(&no, at + Span::minutes(50), i % 2 == 0),
                )
                .await;
            keep(&mut s, e.message_id.to_string(), true);
            expect.status = "CLOSED".into();
        }
        s.tickets.insert(no, expect);
    }
    // Other units' tickets on the same topics: skipped.
    for i in 0..3 {
        let no = format!("{prefix}X{i}");
        let e = feed
            .send(
                Kind::Dispatched,
                &dispatch(&no, OTHER_UNIT, base, Span::hours(1), Span::days(5)),
            )
            .await;
        keep(&mut s, e.message_id.to_string(), false);
    }
    // A closing without a handling unit, of a ticket never dispatched to us: kept, waiting.
    let e = feed
        .send(
            Kind::Closed,
            &close(&format!("{prefix}ORPHAN"), base, false),
        )
        .await;
    keep(&mut s, e.message_id.to_string(), true);
    s
}

impl Scenario {
    /// Asserts the tables hold exactly what the scenario leads to.
    pub async fn check(&self, db: &Db) {
        let rows: Vec<(String, String, i64, Option<String>, i64)> = on_db!(db, p => {
            sqlx::query("SELECT ticket_no, status, urge_count, satisfaction, dispatch_count FROM hotline_tickets ORDER BY ticket_no")
                .fetch_all(p).await.unwrap().iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()
        });
        let got: BTreeMap<String, Expect> = rows
            .into_iter()
            .map(|(no, status, urge_count, satisfaction, dispatch_count)| {
                (
                    no,
                    Expect {
                        status,
                        urge_count,
                        satisfaction,
                        dispatch_count,
                    },
                )
            })
            .collect();
        assert_eq!(got, self.tickets, "tickets");
        let events: Vec<String> = on_db!(db, p => sqlx::query_scalar("SELECT message_id FROM hotline_ticket_events ORDER BY message_id").fetch_all(p).await.unwrap());
        assert_eq!(
            events.len(),
            self.event_ids.len(),
            "one event per message id"
        );
        assert_eq!(events.into_iter().collect::<BTreeSet<_>>(), self.event_ids);
        let processed: Vec<String> = on_db!(db, p => sqlx::query_scalar("SELECT message_id FROM app_processed_messages WHERE consumer = 'hotline'").fetch_all(p).await.unwrap());
        assert_eq!(
            processed.len(),
            self.all_ids.len(),
            "each message id applied once"
        );
        assert_eq!(processed.into_iter().collect::<BTreeSet<_>>(), self.all_ids);
        let rejected: i64 = on_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM app_rejected_messages").fetch_one(p).await.unwrap());
        assert_eq!(rejected, 0, "nothing rejected");
    }
}
