//! Receipts of accepted pushes: the first push of a partner message claims a receipt, a retry
//! finds it and gets the first answer, so no second event is produced.
//!
//! A receipt is keyed by (app, partner message id) and remembers what it was claimed for: the
//! route and the SM3 digest of the body. A retry must be the same message: the same id on
//! another route or with another body is a [`ReceiptConflict`], never a duplicate (answering it
//! as one would drop a different message silently).
//!
//! Claims, completions and releases go through the store's writer task and are committed in
//! batches with the nonces ([`crate::writer`]).

use crate::writer::{ClaimRequest, Op};
use crate::{now_ms, observed, StateError, StateStore};

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

/// The partner message id was first used for another message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptConflict {
    /// The first use was on another route.
    pub route_differs: bool,
    /// The first use had another body.
    pub body_differs: bool,
}

/// What the claimed message is: its route (`partner/mapping`) and the SM3 digest (hex) of its
/// body as the hub read it (after decryption).
#[derive(Debug, Clone, Copy)]
pub struct ReceiptFingerprint<'a> {
    pub route: &'a str,
    pub body_sm3: &'a str,
}

/// Compares a claim's fingerprint with the stored one. Either side without a fingerprint (pulls,
/// receipts written before migration 0007) compares by id alone.
pub(crate) fn compare(
    route: Option<&str>,
    body_sm3: Option<&str>,
    stored_route: Option<&str>,
    stored_body_sm3: Option<&str>,
) -> Option<ReceiptConflict> {
    let differs = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
    let conflict = ReceiptConflict {
        route_differs: differs(route, stored_route),
        body_differs: differs(body_sm3, stored_body_sm3),
    };
    (conflict.route_differs || conflict.body_differs).then_some(conflict)
}

impl StateStore {
    /// Claims `(app_id, partner_message_id)` for a new message id, by id alone (pulls). A
    /// pending claim older than `stale_after_ms` (its producer died) is taken over with the
    /// *same* message id, so if the first attempt did reach Kafka, consumers see one message id
    /// twice and keep one.
    pub async fn claim_receipt(
        &self,
        app_id: &str,
        partner_message_id: &str,
        new_message_id: &str,
        topic: &str,
        stale_after_ms: i64,
    ) -> Result<Receipt, StateError> {
        let claimed = self
            .claim(
                app_id,
                partner_message_id,
                None,
                new_message_id,
                topic,
                stale_after_ms,
            )
            .await;
        // Without a fingerprint nothing can conflict.
        observed(
            "claim_receipt",
            claimed.map(|c| c.unwrap_or(Receipt::InProgress)),
        )
    }

    /// [`StateStore::claim_receipt`] for a push: the receipt also records `fingerprint`, and a
    /// claim of the same id with another route or body is `Err(ReceiptConflict)` whatever state
    /// the first claim is in.
    pub async fn claim_receipt_checked(
        &self,
        app_id: &str,
        partner_message_id: &str,
        fingerprint: ReceiptFingerprint<'_>,
        new_message_id: &str,
        topic: &str,
        stale_after_ms: i64,
    ) -> Result<Result<Receipt, ReceiptConflict>, StateError> {
        let claimed = self
            .claim(
                app_id,
                partner_message_id,
                Some(fingerprint),
                new_message_id,
                topic,
                stale_after_ms,
            )
            .await;
        observed("claim_receipt", claimed)
    }

    async fn claim(
        &self,
        app_id: &str,
        partner_message_id: &str,
        fingerprint: Option<ReceiptFingerprint<'_>>,
        new_message_id: &str,
        topic: &str,
        stale_after_ms: i64,
    ) -> Result<Result<Receipt, ReceiptConflict>, StateError> {
        let claim = ClaimRequest {
            app_id: app_id.to_string(),
            partner_message_id: partner_message_id.to_string(),
            new_message_id: new_message_id.to_string(),
            topic: topic.to_string(),
            stale_after_ms,
            route: fingerprint.map(|f| f.route.to_string()),
            body_sm3: fingerprint.map(|f| f.body_sm3.to_string()),
        };
        self.writer
            .submit(|reply| Op::Claim { claim, reply })
            .await
            .map_err(StateError::Batch)
    }

    /// Marks a claim done once the broker acknowledged its message.
    pub async fn complete_receipt(
        &self,
        app_id: &str,
        partner_message_id: &str,
    ) -> Result<(), StateError> {
        observed(
            "complete_receipt",
            self.settle(app_id, partner_message_id, true).await,
        )
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
        observed(
            "release_receipt",
            self.settle(app_id, partner_message_id, false).await,
        )
    }

    async fn settle(
        &self,
        app_id: &str,
        partner_message_id: &str,
        done: bool,
    ) -> Result<(), StateError> {
        let (app_id, partner_message_id) = (app_id.to_string(), partner_message_id.to_string());
        self.writer
            .submit(|reply| Op::Settle {
                app_id,
                partner_message_id,
                done,
                reply,
            })
            .await
            .map_err(StateError::Batch)
    }

    /// Deletes receipts first claimed before `before_ms` (the retention, `[state]
    /// receipt_retention_days`), in slices of `slice` rows so a large purge never holds the
    /// write lock for long; returns how many.
    pub async fn purge_receipts_before(&self, before_ms: i64) -> Result<u64, StateError> {
        let sql = "DELETE FROM hub_ingress_receipts WHERE (app_id, partner_message_id) IN \
                   (SELECT app_id, partner_message_id FROM hub_ingress_receipts \
                   WHERE first_at_ms < $1 LIMIT $2)";
        observed(
            "purge_receipts_before",
            self.delete_in_slices(sql, before_ms).await,
        )
    }

    /// Receipts older than `retention_days` are purged by [`StateStore::purge_receipts_before`];
    /// this computes the cut-off from now.
    pub fn receipt_cutoff_ms(retention_days: u32) -> i64 {
        now_ms().saturating_sub(i64::from(retention_days).saturating_mul(86_400_000))
    }
}
