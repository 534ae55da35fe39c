//! Operator accounts of the console and their sessions (`docs/console.md`).
//!
//! The store keeps what the console decides on: an account's role, its argon2id password hash
//! (computed by the console; the store never sees a password) and whether it is disabled; a
//! session as the digest of its token with its creation, absolute expiry and last use. Idle
//! expiry is the console's rule, applied to `last_seen_at_ms`.

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// One operator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    pub disabled: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A session found by its token digest, with its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_hash: String,
    pub operator: String,
    pub role: String,
    pub operator_disabled: bool,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_seen_at_ms: i64,
}

const OPERATOR_COLUMNS: &str = "name, role, password_hash, disabled, created_at_ms, updated_at_ms";

fn operator_from<R: Row>(r: &R) -> Result<Operator, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Operator {
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

impl StateStore {
    /// Creates operator `name`; `false` when the name is taken.
    pub async fn create_operator(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let sql = format!(
                "INSERT INTO hub_operators ({OPERATOR_COLUMNS}) VALUES ($1, $2, $3, 0, $4, $4) \
                 ON CONFLICT DO NOTHING"
            );
            let now = now_ms();
            let n = on_pool!(self, p => sqlx::query(&sql).bind(name).bind(role).bind(password_hash)
                .bind(now).execute(p).await?.rows_affected());
            Ok(n == 1)
        }
        .await;
        observed("create_operator", result)
    }

    /// Operator `name`, disabled or not.
    pub async fn operator(&self, name: &str) -> Result<Option<Operator>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = format!("SELECT {OPERATOR_COLUMNS} FROM hub_operators WHERE name = $1");
            Ok(
                on_pool!(self, p => match sqlx::query(&sql).bind(name).fetch_optional(p).await? {
                    Some(r) => Some(operator_from(&r)?),
                    None => None,
                }),
            )
        }
        .await;
        observed("operator", result)
    }

    /// Every operator, by name.
    pub async fn list_operators(&self) -> Result<Vec<Operator>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = format!("SELECT {OPERATOR_COLUMNS} FROM hub_operators ORDER BY name");
            Ok(on_pool!(self, p => {
                let rows = sqlx::query(&sql).fetch_all(p).await?;
                rows.iter().map(operator_from).collect::<Result<Vec<_>, _>>()?
            }))
        }
        .await;
        observed("list_operators", result)
    }

    /// Disables (or enables again) operator `name`; disabling ends its sessions. `false` when
    /// there is no such operator.
    pub async fn set_operator_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let update =
                "UPDATE hub_operators SET disabled = $1, updated_at_ms = $2 WHERE name = $3";
            let end = "DELETE FROM hub_console_sessions WHERE operator = $1";
            let now = now_ms();
            let flag: i64 = i64::from(disabled);
            let n = on_pool!(self, p => {
                let mut tx = p.begin().await?;
                let n = sqlx::query(update).bind(flag).bind(now).bind(name)
                    .execute(&mut *tx).await?.rows_affected();
                if disabled {
                    sqlx::query(end).bind(name).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                n
            });
            Ok(n == 1)
        }
        .await;
        observed("set_operator_disabled", result)
    }

    /// Starts a session for `operator`, valid until `expires_at_ms` at most.
    pub async fn create_console_session(
        &self,
        token_hash: &str,
        operator: &str,
        expires_at_ms: i64,
    ) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_console_sessions \
                       (token_hash, operator, created_at_ms, expires_at_ms, last_seen_at_ms) \
                       VALUES ($1, $2, $3, $4, $3)";
            let now = now_ms();
            on_pool!(self, p => sqlx::query(sql).bind(token_hash).bind(operator).bind(now)
                .bind(expires_at_ms).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("create_console_session", result)
    }

    /// The session whose token digest is `token_hash`, with its operator's role.
    pub async fn console_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<ConsoleSession>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "SELECT s.token_hash, s.operator, o.role, o.disabled, s.created_at_ms, \
                       s.expires_at_ms, s.last_seen_at_ms FROM hub_console_sessions s \
                       JOIN hub_operators o ON o.name = s.operator WHERE s.token_hash = $1";
            Ok(on_pool!(self, p => match sqlx::query(sql).bind(token_hash).fetch_optional(p).await? {
                Some(r) => Some(ConsoleSession {
                    token_hash: r.try_get("token_hash")?,
                    operator: r.try_get("operator")?,
                    role: r.try_get("role")?,
                    operator_disabled: r.try_get::<i64, _>("disabled")? != 0,
                    created_at_ms: r.try_get("created_at_ms")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                    last_seen_at_ms: r.try_get("last_seen_at_ms")?,
                }),
                None => None,
            }))
        }
        .await;
        observed("console_session", result)
    }

    /// Records that the session was used now.
    pub async fn touch_console_session(&self, token_hash: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_console_sessions SET last_seen_at_ms = $1 WHERE token_hash = $2";
            let now = now_ms();
            on_pool!(self, p => sqlx::query(sql).bind(now).bind(token_hash).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("touch_console_session", result)
    }

    /// Ends a session (logout, expiry).
    pub async fn delete_console_session(&self, token_hash: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_console_sessions WHERE token_hash = $1";
            on_pool!(self, p => sqlx::query(sql).bind(token_hash).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("delete_console_session", result)
    }

    /// Deletes sessions past their absolute expiry or unused since `idle_before_ms`.
    pub async fn purge_console_sessions(&self, idle_before_ms: i64) -> Result<u64, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_console_sessions WHERE expires_at_ms < $1 OR last_seen_at_ms < $2";
            let now = now_ms();
            Ok(on_pool!(self, p => sqlx::query(sql).bind(now).bind(idle_before_ms).execute(p).await?.rows_affected()))
        }
        .await;
        observed("purge_console_sessions", result)
    }

    /// Until when (ms) `source` must wait before its next login attempt as `operator`; `None`
    /// when it need not wait.
    pub async fn login_blocked_until(
        &self,
        source: &str,
        operator: &str,
    ) -> Result<Option<i64>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "SELECT blocked_until_ms FROM hub_login_failures \
                       WHERE source = $1 AND operator = $2 AND blocked_until_ms > $3";
            let now = now_ms();
            let until: Option<i64> = on_pool!(self, p => sqlx::query_scalar(sql)
                .bind(source).bind(operator).bind(now).fetch_optional(p).await?);
            Ok(until)
        }
        .await;
        observed("login_blocked_until", result)
    }

    /// Counts one more failed login of `source` as `operator` (from one again when the last
    /// failure is older than `memory_ms`) and blocks the pair until `block(failures)` ms from
    /// now. Every replica counts in the same row. Returns the failures counted.
    pub async fn record_login_failure(
        &self,
        source: &str,
        operator: &str,
        memory_ms: i64,
        block: impl Fn(i64) -> i64,
    ) -> Result<i64, StateError> {
        let result: Result<_, StateError> = async {
            let now = now_ms();
            let sql = "INSERT INTO hub_login_failures \
                       (source, operator, failures, last_failure_ms, blocked_until_ms) \
                       VALUES ($1, $2, 1, $3, 0) \
                       ON CONFLICT (source, operator) DO UPDATE SET \
                       failures = CASE WHEN hub_login_failures.last_failure_ms < $4 THEN 1 \
                                  ELSE hub_login_failures.failures + 1 END, \
                       last_failure_ms = $3 \
                       RETURNING failures";
            let failures: i64 = on_pool!(self, p => sqlx::query_scalar(sql)
                .bind(source).bind(operator).bind(now).bind(now - memory_ms)
                .fetch_one(p).await?);
            let until = now.saturating_add(block(failures).max(0));
            let sql = "UPDATE hub_login_failures SET blocked_until_ms = $1 \
                       WHERE source = $2 AND operator = $3";
            on_pool!(self, p => sqlx::query(sql).bind(until).bind(source).bind(operator)
                .execute(p).await?.rows_affected());
            Ok(failures)
        }
        .await;
        observed("record_login_failure", result)
    }

    /// Forgets the failed logins of `source` as `operator` (after a successful login).
    pub async fn clear_login_failures(
        &self,
        source: &str,
        operator: &str,
    ) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_login_failures WHERE source = $1 AND operator = $2";
            on_pool!(self, p => sqlx::query(sql).bind(source).bind(operator).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("clear_login_failures", result)
    }

    /// Deletes failed-login rows whose last failure is before `before_ms` and that block
    /// nothing any more.
    pub async fn purge_login_failures(&self, before_ms: i64) -> Result<u64, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_login_failures WHERE last_failure_ms < $1 AND blocked_until_ms < $2";
            let now = now_ms();
            Ok(on_pool!(self, p => sqlx::query(sql).bind(before_ms).bind(now).execute(p).await?.rows_affected()))
        }
        .await;
        observed("purge_login_failures", result)
    }
}
