//! Group commit of the writes on the ingest path: replay nonces and idempotency receipts.
//!
//! Every request used to claim its nonce in a transaction of its own, one fsync each, with all
//! writers serialised on SQLite's write lock and a writer that found it taken sleeping in
//! SQLite's busy handler (1, 2, 5, … 100 ms). Now one writer task per store drains a queue:
//! everything waiting when it starts a batch (nonce claims, receipt claims, completions and
//! releases) is written in one transaction, committed with one fsync (`synchronous=FULL` on
//! SQLite, `synchronous_commit=on` on PostgreSQL, unchanged), and only then is each waiter
//! answered. A request is therefore still answered only after its nonce is durable; what
//! changes is that concurrent requests share the fsync. While a batch commits, the next one
//! collects, so an idle hub pays no extra delay and a busy one pays one commit per batch.
//!
//! Within a batch, requests are decided in queue order, exactly as if they had run one after
//! the other: the first claim of a nonce wins and every later claim of it, in the same batch or
//! a later one, is a replay. Across replicas (PostgreSQL) the database decides: a multi-row
//! `INSERT … ON CONFLICT … RETURNING` waits for another replica's uncommitted claim of the same
//! key and then sees it, so exactly one replica wins. Keys are written in sorted order so two
//! replicas' batches cannot deadlock on each other; a deadlock or serialisation failure the
//! database reports anyway is retried a few times. When a batch fails, every waiter of that
//! batch gets the error (nothing of it was committed).
//!
//! On SQLite the store's other writers (trace, cursors, leases, purges, audit) take the same
//! in-process write gate as the writer task, so the writer never meets SQLite's lock held by
//! its own process and never sleeps in the busy handler.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::receipts::{Receipt, ReceiptConflict};
use crate::{now_ms, Pool};

/// Operations in one transaction at most (a batch larger than this waits for the next one).
const MAX_BATCH: usize = 1024;
/// Rows per multi-row statement (SQLite binds at most 32,766 parameters).
const CHUNK: usize = 256;
/// Requests waiting for the writer at most; senders wait beyond that (back-pressure).
const QUEUE: usize = 16_384;
/// Attempts of a batch that PostgreSQL aborted for a deadlock or a serialisation failure.
const ATTEMPTS: usize = 3;

type Reply<T> = oneshot::Sender<Result<T, Arc<sqlx::Error>>>;

/// A receipt claim as queued.
pub(crate) struct ClaimRequest {
    pub app_id: String,
    pub partner_message_id: String,
    pub new_message_id: String,
    pub topic: String,
    pub stale_after_ms: i64,
    /// Route and SM3 of the body; `None` for callers that key by id alone (pulls).
    pub route: Option<String>,
    pub body_sm3: Option<String>,
}

pub(crate) type ClaimOutcome = Result<Receipt, ReceiptConflict>;

pub(crate) enum Op {
    Nonce {
        app_id: String,
        nonce: String,
        window_ms: i64,
        reply: Reply<bool>,
    },
    Claim {
        claim: ClaimRequest,
        reply: Reply<ClaimOutcome>,
    },
    /// `done`: complete (the broker acknowledged); otherwise release (the produce failed).
    Settle {
        app_id: String,
        partner_message_id: String,
        done: bool,
        reply: Reply<()>,
    },
    /// Answered once everything queued before it is committed.
    Barrier { reply: Reply<()> },
}

/// The queue of a store's writer task. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime. It ends when every handle (every
    /// clone of the store) is dropped.
    pub(crate) fn start(pool: Pool, gate: Option<Arc<Mutex<()>>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, gate, rx));
        Self { tx }
    }

    /// Queues the operation `make` builds and waits for its batch to commit.
    pub(crate) async fn submit<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Op,
    ) -> Result<T, Arc<sqlx::Error>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Arc::new(sqlx::Error::PoolClosed);
        self.tx.send(make(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: Pool, gate: Option<Arc<Mutex<()>>>, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        execute(&pool, gate.as_deref(), std::mem::take(&mut batch)).await;
    }
}

struct NonceRow {
    app_id: String,
    nonce: String,
    window_ms: i64,
}

/// What a batch decided, in the order of its requests of each kind.
struct Decided {
    nonces: Vec<bool>,
    claims: Vec<ClaimOutcome>,
}

async fn execute(pool: &Pool, gate: Option<&Mutex<()>>, ops: Vec<Op>) {
    let started = Instant::now();
    let size = ops.len();
    let mut nonces = Vec::new();
    let mut nonce_replies = Vec::new();
    let mut claims = Vec::new();
    let mut claim_replies = Vec::new();
    let mut settles = Vec::new();
    let mut other_replies = Vec::new();
    for op in ops {
        match op {
            Op::Nonce {
                app_id,
                nonce,
                window_ms,
                reply,
            } => {
                nonces.push(NonceRow {
                    app_id,
                    nonce,
                    window_ms,
                });
                nonce_replies.push(reply);
            }
            Op::Claim { claim, reply } => {
                claims.push(claim);
                claim_replies.push(reply);
            }
            Op::Settle {
                app_id,
                partner_message_id,
                done,
                reply,
            } => {
                settles.push((app_id, partner_message_id, done));
                other_replies.push(reply);
            }
            Op::Barrier { reply } => other_replies.push(reply),
        }
    }
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let result = {
            let _gate = match gate {
                Some(g) => Some(g.lock().await),
                None => None,
            };
            match pool {
                Pool::Sqlite(p) => sqlite::apply(p, &nonces, &claims, &settles).await,
                Pool::Postgres(p) => postgres::apply(p, &nonces, &claims, &settles).await,
            }
        };
        match result {
            Err(e) if attempt < ATTEMPTS && retryable(&e) => continue,
            other => break other,
        }
    };
    metrics::histogram!("hub_state_batch_operations").record(size as f64);
    metrics::histogram!("hub_state_batch_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(decided) => {
            for (reply, won) in nonce_replies.into_iter().zip(decided.nonces) {
                let _ = reply.send(Ok(won));
            }
            for (reply, outcome) in claim_replies.into_iter().zip(decided.claims) {
                let _ = reply.send(Ok(outcome));
            }
            for reply in other_replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            metrics::counter!("hub_state_batches_failed_total").increment(1);
            tracing::warn!(error = %e, operations = size, "state batch failed; every request of it is refused");
            let e = Arc::new(e);
            for reply in nonce_replies {
                let _ = reply.send(Err(Arc::clone(&e)));
            }
            for reply in claim_replies {
                let _ = reply.send(Err(Arc::clone(&e)));
            }
            for reply in other_replies {
                let _ = reply.send(Err(Arc::clone(&e)));
            }
        }
    }
}

/// PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
/// and may simply run again.
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// The first request of each nonce, in queue order (later ones are replays whatever the first
/// finds), and the order to write them in (sorted, so replicas take row locks in one order).
fn first_nonces(rows: &[NonceRow]) -> Vec<usize> {
    let mut seen = HashSet::with_capacity(rows.len());
    let mut firsts: Vec<usize> = (0..rows.len())
        .filter(|&i| seen.insert((rows[i].app_id.as_str(), rows[i].nonce.as_str())))
        .collect();
    firsts.sort_by(|&a, &b| {
        (rows[a].app_id.as_str(), rows[a].nonce.as_str())
            .cmp(&(rows[b].app_id.as_str(), rows[b].nonce.as_str()))
    });
    firsts
}

/// The first claim of each receipt key in queue order, sorted for writing.
fn first_claims(claims: &[ClaimRequest]) -> Vec<usize> {
    let mut seen = HashSet::with_capacity(claims.len());
    let mut firsts: Vec<usize> = (0..claims.len())
        .filter(|&i| {
            seen.insert((
                claims[i].app_id.as_str(),
                claims[i].partner_message_id.as_str(),
            ))
        })
        .collect();
    firsts.sort_by(|&a, &b| {
        (
            claims[a].app_id.as_str(),
            claims[a].partner_message_id.as_str(),
        )
            .cmp(&(
                claims[b].app_id.as_str(),
                claims[b].partner_message_id.as_str(),
            ))
    });
    firsts
}

/// The parts of a batch written with the same SQL on both backends, one statement per request:
/// completions and releases (in queue order, before the claims: they settle earlier claims),
/// and the receipt claims the multi-row insert did not decide (retries and duplicates), in
/// queue order.
macro_rules! settle_and_resolve {
    ($tx:expr, $claims:expr, $settles:expr, $inserted:expr, $now:expr) => {{
        for (app_id, pmid, done) in $settles {
            let sql = if *done {
                "UPDATE hub_ingress_receipts SET state = 'done' \
                 WHERE app_id = $1 AND partner_message_id = $2"
            } else {
                "UPDATE hub_ingress_receipts SET created_at_ms = 0 \
                 WHERE app_id = $1 AND partner_message_id = $2 AND state = 'pending'"
            };
            sqlx::query(sql)
                .bind(app_id)
                .bind(pmid)
                .execute(&mut *$tx)
                .await?;
        }
        let mut outcomes = Vec::with_capacity($claims.len());
        for (i, c) in $claims.iter().enumerate() {
            if $inserted[i] {
                outcomes.push(Ok(Receipt::Claimed {
                    message_id: c.new_message_id.clone(),
                }));
                continue;
            }
            let read = "SELECT message_id, topic, state, created_at_ms, route, body_sm3 \
                        FROM hub_ingress_receipts WHERE app_id = $1 AND partner_message_id = $2";
            let row = sqlx::query(read)
                .bind(&c.app_id)
                .bind(&c.partner_message_id)
                .fetch_optional(&mut *$tx)
                .await?;
            let Some(row) = row else {
                // Purged between the insert and this read: the caller may simply retry.
                outcomes.push(Ok(Receipt::InProgress));
                continue;
            };
            let message_id: String = row.try_get("message_id")?;
            let topic: String = row.try_get("topic")?;
            let state: String = row.try_get("state")?;
            let created_at_ms: i64 = row.try_get("created_at_ms")?;
            let route: Option<String> = row.try_get("route")?;
            let body_sm3: Option<String> = row.try_get("body_sm3")?;
            let conflict = crate::receipts::compare(
                c.route.as_deref(),
                c.body_sm3.as_deref(),
                route.as_deref(),
                body_sm3.as_deref(),
            );
            if let Some(conflict) = conflict {
                outcomes.push(Err(conflict));
            } else if state == "done" {
                outcomes.push(Ok(Receipt::Done { message_id, topic }));
            } else if created_at_ms <= $now.saturating_sub(c.stale_after_ms) {
                // Its producer died (or released it): take it over with the same message id.
                let take_over = "UPDATE hub_ingress_receipts SET created_at_ms = $1 \
                                 WHERE app_id = $2 AND partner_message_id = $3 \
                                 AND state = 'pending' AND created_at_ms = $4";
                let taken = sqlx::query(take_over)
                    .bind($now)
                    .bind(&c.app_id)
                    .bind(&c.partner_message_id)
                    .bind(created_at_ms)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                outcomes.push(Ok(if taken == 1 {
                    Receipt::Claimed { message_id }
                } else {
                    Receipt::InProgress
                }));
            } else {
                outcomes.push(Ok(Receipt::InProgress));
            }
        }
        outcomes
    }};
}

mod sqlite {
    use super::*;
    use sqlx::SqlitePool;

    /// `($2,$3,$4),($5,$6,$7),…` for `rows` rows of `cols` parameters after `first - 1`.
    fn values(rows: usize, cols: usize, first: usize) -> String {
        let mut s = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            if r > 0 {
                s.push(',');
            }
            s.push('(');
            for c in 0..cols {
                if c > 0 {
                    s.push(',');
                }
                s.push('$');
                s.push_str(&(first + r * cols + c).to_string());
            }
            s.push(')');
        }
        s
    }

    pub(super) async fn apply(
        pool: &SqlitePool,
        nonces: &[NonceRow],
        claims: &[ClaimRequest],
        settles: &[(String, String, bool)],
    ) -> Result<Decided, sqlx::Error> {
        let now = now_ms();
        let mut tx = pool.begin().await?;

        let firsts = first_nonces(nonces);
        let mut won = vec![false; nonces.len()];
        for chunk in firsts.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO hub_nonces (app_id, nonce, expires_at_ms) VALUES {} \
                 ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
                 WHERE hub_nonces.expires_at_ms < $1 RETURNING app_id, nonce",
                values(chunk.len(), 3, 2)
            );
            let mut q = sqlx::query(&sql).persistent(false).bind(now);
            for &i in chunk {
                let r = &nonces[i];
                q = q
                    .bind(&r.app_id)
                    .bind(&r.nonce)
                    .bind(now.saturating_add(r.window_ms));
            }
            let rows = q.fetch_all(&mut *tx).await?;
            mark_won(nonces, chunk, &returned(&rows)?, &mut won);
        }

        let firsts = first_claims(claims);
        let mut inserted = vec![false; claims.len()];
        for chunk in firsts.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO hub_ingress_receipts (app_id, partner_message_id, message_id, topic, \
                 route, body_sm3, state, created_at_ms, first_at_ms) \
                 SELECT column1, column2, column3, column4, column5, column6, 'pending', $1, $1 \
                 FROM (VALUES {}) WHERE true \
                 ON CONFLICT (app_id, partner_message_id) DO NOTHING \
                 RETURNING app_id, partner_message_id",
                values(chunk.len(), 6, 2)
            );
            let mut q = sqlx::query(&sql).persistent(false).bind(now);
            for &i in chunk {
                let c = &claims[i];
                q = q
                    .bind(&c.app_id)
                    .bind(&c.partner_message_id)
                    .bind(&c.new_message_id)
                    .bind(&c.topic)
                    .bind(&c.route)
                    .bind(&c.body_sm3);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            mark_claimed(claims, chunk, &returned(&rows)?, &mut inserted);
        }

        let outcomes = settle_and_resolve!(tx, claims, settles, inserted, now);
        tx.commit().await?;
        Ok(Decided {
            nonces: won,
            claims: outcomes,
        })
    }
}

mod postgres {
    use super::*;
    use sqlx::PgPool;

    pub(super) async fn apply(
        pool: &PgPool,
        nonces: &[NonceRow],
        claims: &[ClaimRequest],
        settles: &[(String, String, bool)],
    ) -> Result<Decided, sqlx::Error> {
        let now = now_ms();
        let mut tx = pool.begin().await?;

        let firsts = first_nonces(nonces);
        let mut won = vec![false; nonces.len()];
        if !firsts.is_empty() {
            let apps: Vec<&str> = firsts.iter().map(|&i| nonces[i].app_id.as_str()).collect();
            let keys: Vec<&str> = firsts.iter().map(|&i| nonces[i].nonce.as_str()).collect();
            let expiries: Vec<i64> = firsts
                .iter()
                .map(|&i| now.saturating_add(nonces[i].window_ms))
                .collect();
            let sql = "INSERT INTO hub_nonces (app_id, nonce, expires_at_ms) \
                       SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
                       ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
                       WHERE hub_nonces.expires_at_ms < $4 RETURNING app_id, nonce";
            let rows = sqlx::query(sql)
                .bind(&apps)
                .bind(&keys)
                .bind(&expiries)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            mark_won(nonces, &firsts, &returned(&rows)?, &mut won);
        }

        let firsts = first_claims(claims);
        let mut inserted = vec![false; claims.len()];
        if !firsts.is_empty() {
            let col = |f: fn(&ClaimRequest) -> Option<&str>| -> Vec<Option<&str>> {
                firsts.iter().map(|&i| f(&claims[i])).collect()
            };
            let sql = "INSERT INTO hub_ingress_receipts (app_id, partner_message_id, message_id, \
                       topic, route, body_sm3, state, created_at_ms, first_at_ms) \
                       SELECT a, p, m, t, r, b, 'pending', $7, $7 FROM UNNEST($1::text[], \
                       $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS k(a, p, m, t, r, b) \
                       ON CONFLICT (app_id, partner_message_id) DO NOTHING \
                       RETURNING app_id, partner_message_id";
            let rows = sqlx::query(sql)
                .bind(col(|c| Some(c.app_id.as_str())))
                .bind(col(|c| Some(c.partner_message_id.as_str())))
                .bind(col(|c| Some(c.new_message_id.as_str())))
                .bind(col(|c| Some(c.topic.as_str())))
                .bind(col(|c| c.route.as_deref()))
                .bind(col(|c| c.body_sm3.as_deref()))
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            mark_claimed(claims, &firsts, &returned(&rows)?, &mut inserted);
        }

        let outcomes = settle_and_resolve!(tx, claims, settles, inserted, now);
        tx.commit().await?;
        Ok(Decided {
            nonces: won,
            claims: outcomes,
        })
    }
}

/// The `(app_id, <second column>)` pairs a `RETURNING` gave back.
fn returned<R: Row>(rows: &[R]) -> Result<HashSet<(String, String)>, sqlx::Error>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>(0usize)?,
                r.try_get::<String, _>(1usize)?,
            ))
        })
        .collect()
}

/// Sets `won[i]` for every nonce request of `chunk` whose key came back.
fn mark_won(
    nonces: &[NonceRow],
    chunk: &[usize],
    back: &HashSet<(String, String)>,
    won: &mut [bool],
) {
    for &i in chunk {
        let key = (nonces[i].app_id.clone(), nonces[i].nonce.clone());
        won[i] = back.contains(&key);
    }
}

/// Sets `inserted[i]` for every claim of `chunk` whose key came back.
fn mark_claimed(
    claims: &[ClaimRequest],
    chunk: &[usize],
    back: &HashSet<(String, String)>,
    inserted: &mut [bool],
) {
    for &i in chunk {
        let key = (
            claims[i].app_id.clone(),
            claims[i].partner_message_id.clone(),
        );
        inserted[i] = back.contains(&key);
    }
}
