//! The audit log: security-relevant events, append-only, chained with SM3.
//!
//! Each record's hash is `SM3(prev_hash ‖ "\n" ‖ seq ‖ "\n" ‖ at_ms ‖ "\n" ‖ actor ‖ "\n" ‖
//! action ‖ "\n" ‖ subject ‖ "\n" ‖ detail)` in lowercase hex, `prev_hash` being the previous
//! record's hash (64 zeros before the first). A head row holds the last sequence number and hash:
//! appending locks it first, which serialises appends from every replica (a row lock on
//! PostgreSQL, the write lock on SQLite), and it lets [`StateStore::verify_audit`] notice a
//! removed tail. Any edited, removed, inserted or reordered record breaks the chain there.

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// Hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    /// Who: an operator account, a partner app id, or `hub:<instance>`.
    pub actor: String,
    /// What, as a stable code: `config.loaded`, `auth.signature_invalid`, `dlq.replayed`, …
    pub action: String,
    /// On what: a route, a message id, a key id.
    pub subject: String,
    /// Details as JSON; never clear-text personal data or key material.
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    pub records: u64,
    /// Empty when the chain is intact; otherwise the first break, then anything after it.
    pub problems: Vec<String>,
}

fn chain_hash(
    prev: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let canonical = format!("{prev}\n{seq}\n{at_ms}\n{actor}\n{action}\n{subject}\n{detail}");
    hub_security::sm::sm3_hex(canonical.as_bytes())
}

impl StateStore {
    /// Appends a record and returns it with its sequence number and hash.
    pub async fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<AuditRecord, StateError> {
        let result: Result<_, StateError> = async {
            let detail_text = detail.to_string();
            let at_ms = now_ms();
            let lock_head = "UPDATE hub_audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";
            let insert =
                "INSERT INTO hub_audit (seq, at_ms, actor, action, subject, detail, prev_hash, hash) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
            let move_head = "UPDATE hub_audit_head SET hash = $1 WHERE id = 1";
            let _gate = self.write_gate().await;
            let (seq, prev, hash) = on_pool!(self, p => {
                let mut tx = p.begin().await?;
                let row = sqlx::query(lock_head).fetch_one(&mut *tx).await?;
                let seq: i64 = row.try_get("seq")?;
                let prev: String = row.try_get("hash")?;
                let hash = chain_hash(&prev, seq, at_ms, actor, action, subject, &detail_text);
                sqlx::query(insert)
                    .bind(seq)
                    .bind(at_ms)
                    .bind(actor)
                    .bind(action)
                    .bind(subject)
                    .bind(&detail_text)
                    .bind(&prev)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(move_head).bind(&hash).execute(&mut *tx).await?;
                tx.commit().await?;
                (seq, prev, hash)
            });
            // Audit events by action (stable codes: `config.loaded`, `auth.replay`, …).
            metrics::counter!("hub_audit_events_total", "action" => action.to_string()).increment(1);
            Ok(AuditRecord {
                seq,
                at_ms,
                actor: actor.to_string(),
                action: action.to_string(),
                subject: subject.to_string(),
                detail: detail.clone(),
                prev_hash: prev,
                hash,
            })
        }
        .await;
        observed("append_audit", result)
    }

    /// The last `limit` records, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StateError> {
        let sql =
            "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash FROM hub_audit \
                   ORDER BY seq DESC LIMIT $1";
        let rows = on_pool!(self, p => {
            let rows = sqlx::query(sql).bind(limit).fetch_all(p).await?;
            rows.iter().map(record_from_row).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// Recomputes the whole chain and reports every break.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, StateError> {
        let result: Result<_, StateError> = async {
            const PAGE: i64 = 5_000;
            let page_sql =
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash FROM hub_audit \
                            WHERE seq > $1 ORDER BY seq LIMIT $2";
            let head_sql = "SELECT seq, hash FROM hub_audit_head WHERE id = 1";
            let mut problems = Vec::new();
            let mut expected_prev = GENESIS.to_string();
            let mut expected_seq = 1i64;
            let mut after = 0i64;
            let mut records = 0u64;
            loop {
                let page = on_pool!(self, p => {
                    let rows = sqlx::query(page_sql).bind(after).bind(PAGE).fetch_all(p).await?;
                    rows.iter().map(raw_record_from_row).collect::<Result<Vec<_>, sqlx::Error>>()?
                });
                if page.is_empty() {
                    break;
                }
                for (r, detail_text) in &page {
                    records += 1;
                    if r.seq != expected_seq {
                        problems.push(format!(
                            "record {} follows record {}: records {}–{} were removed",
                            r.seq,
                            expected_seq - 1,
                            expected_seq,
                            r.seq - 1
                        ));
                    }
                    if r.prev_hash != expected_prev {
                        problems.push(format!(
                            "record {} does not follow its predecessor (its prev_hash is not the previous record's hash): a record before it was edited, removed or reordered",
                            r.seq
                        ));
                    }
                    let recomputed = chain_hash(
                        &r.prev_hash,
                        r.seq,
                        r.at_ms,
                        &r.actor,
                        &r.action,
                        &r.subject,
                        detail_text,
                    );
                    if recomputed != r.hash {
                        problems.push(format!(
                            "record {} was edited: its content does not match its hash",
                            r.seq
                        ));
                    }
                    expected_prev = r.hash.clone();
                    expected_seq = r.seq + 1;
                    after = r.seq;
                }
            }
            let (head_seq, head_hash): (i64, String) = on_pool!(self, p => {
                let row = sqlx::query(head_sql).fetch_one(p).await?;
                (row.try_get("seq")?, row.try_get("hash")?)
            });
            if head_seq != expected_seq - 1 || head_hash != expected_prev {
                problems.push(format!(
                    "the chain head says the last record is {head_seq}, but the log ends at record {}: records at the end were removed or the head was altered",
                    expected_seq - 1
                ));
            }
            Ok(AuditVerdict { records, problems })
        }
        .await;
        observed("verify_audit", result)
    }
}

fn record_from_row<R>(row: &R) -> Result<AuditRecord, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    raw_record_from_row(row).map(|(r, _)| r)
}

/// The record and its detail exactly as stored (the hash covers the stored text).
fn raw_record_from_row<R>(row: &R) -> Result<(AuditRecord, String), sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let detail: String = row.try_get("detail")?;
    let record = AuditRecord {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        // A detail that is no longer JSON was edited; keep its text so the hash check says so.
        detail: serde_json::from_str(&detail)
            .unwrap_or_else(|_| serde_json::Value::String(detail.clone())),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    };
    Ok((record, detail))
}
