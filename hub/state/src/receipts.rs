//! Receipts of accepted pushes: the first push of a partner message claims a receipt, a retry
//! finds it and gets the first answer, so no second event is produced.

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// This push is the first: go on and produce with `message_id`.
    Claimed { message_id: String },
    /// An earlier push was produced: answer with its message id.
    Done { message_id: String, topic: String },
    /// An earlier push is being produced right now.
    InProgress,
}

impl StateStore {
    /// Claims `(app_id, partner_message_id)` for a new message id. A pending claim older than
    /// `stale_after_ms` (its producer died) is taken over with the *same* message id, so if the
    /// first attempt did reach Kafka, consumers see one message id twice and keep one.
    pub async fn claim_receipt(
        &self,
        app_id: &str,
        partner_message_id: &str,
        new_message_id: &str,
        topic: &str,
        stale_after_ms: i64,
    ) -> Result<Receipt, StateError> {
        let result: Result<_, StateError> = async {
            let now = now_ms();
            let insert = "INSERT INTO hub_ingress_receipts (app_id, partner_message_id, message_id, topic, state, created_at_ms) \
                          VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (app_id, partner_message_id) DO NOTHING";
            let inserted = on_pool!(self, p => sqlx::query(insert)
                .bind(app_id).bind(partner_message_id).bind(new_message_id).bind(topic).bind(now)
                .execute(p).await?.rows_affected());
            if inserted == 1 {
                return Ok(Receipt::Claimed {
                    message_id: new_message_id.to_string(),
                });
            }
            let take_over = "UPDATE hub_ingress_receipts SET created_at_ms = $1 \
                             WHERE app_id = $2 AND partner_message_id = $3 AND state = 'pending' AND created_at_ms <= $4 \
                             RETURNING message_id";
            let taken: Option<String> = on_pool!(self, p => {
                let row = sqlx::query(take_over).bind(now).bind(app_id).bind(partner_message_id).bind(now - stale_after_ms)
                    .fetch_optional(p).await?;
                match row { Some(r) => Some(r.try_get::<String, _>("message_id")?), None => None }
            });
            if let Some(message_id) = taken {
                return Ok(Receipt::Claimed { message_id });
            }
            let read = "SELECT message_id, topic, state FROM hub_ingress_receipts WHERE app_id = $1 AND partner_message_id = $2";
            let found: Option<(String, String, String)> = on_pool!(self, p => {
                let row = sqlx::query(read).bind(app_id).bind(partner_message_id).fetch_optional(p).await?;
                match row {
                    Some(r) => Some((r.try_get("message_id")?, r.try_get("topic")?, r.try_get("state")?)),
                    None => None,
                }
            });
            Ok(match found {
                Some((message_id, topic, state)) if state == "done" => {
                    Receipt::Done { message_id, topic }
                }
                Some(_) => Receipt::InProgress,
                // Released between our insert and our read: the caller may simply retry.
                None => Receipt::InProgress,
            })
        }
        .await;
        observed("claim_receipt", result)
    }

    /// Marks a claim done once the broker acknowledged its message.
    pub async fn complete_receipt(
        &self,
        app_id: &str,
        partner_message_id: &str,
    ) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_ingress_receipts SET state = 'done' WHERE app_id = $1 AND partner_message_id = $2";
            on_pool!(self, p => sqlx::query(sql).bind(app_id).bind(partner_message_id).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("complete_receipt", result)
    }

    /// Gives a claim up after a failed produce: the next claim takes it over at once, with the
    /// same message id. A failure does not prove the broker did not take the record (a timed-out
    /// request may still be written when the broker wakes up), so a retry must carry the same
    /// id for consumers to recognise the repeat.
    pub async fn release_receipt(
        &self,
        app_id: &str,
        partner_message_id: &str,
    ) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_ingress_receipts SET created_at_ms = 0 WHERE app_id = $1 AND partner_message_id = $2 AND state = 'pending'";
            on_pool!(self, p => sqlx::query(sql).bind(app_id).bind(partner_message_id).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("release_receipt", result)
    }
}
