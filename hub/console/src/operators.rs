//! `hub operator add|list|disable|enable`: the console's accounts, managed on the command
//! line by whoever may edit the hub's configuration (the first admin is created this way).

use hub_state::StateStore;
use serde_json::json;

use crate::auth::{hash_password, Role};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Why an operator command failed.
#[derive(Debug)]
pub enum OperatorError {
    Invalid(String),
    Exists(String),
    Unknown(String),
    State(hub_state::StateError),
}

impl std::fmt::Display for OperatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatorError::Invalid(m) => write!(f, "OPERATOR_INVALID: {m}"),
            OperatorError::Exists(n) => write!(f, "OPERATOR_EXISTS: operator `{n}` already exists"),
            OperatorError::Unknown(n) => write!(f, "OPERATOR_UNKNOWN: no operator `{n}`"),
            OperatorError::State(e) => write!(f, "{e}"),
        }
    }
}

impl From<hub_state::StateError> for OperatorError {
    fn from(e: hub_state::StateError) -> Self {
        OperatorError::State(e)
    }
}

/// A name: 1 to 64 characters of A-Z a-z 0-9 `.` `_` `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Creates operator `name` with `role` and `password`; audited with `actor`.
pub async fn add(
    state: &StateStore,
    name: &str,
    role: &str,
    password: &str,
    actor: &str,
) -> Result<(), OperatorError> {
    if !valid_name(name) {
        return Err(OperatorError::Invalid(
            "the name must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_`, `-`".into(),
        ));
    }
    let role = Role::parse(role).ok_or_else(|| {
        OperatorError::Invalid(format!("role `{role}`: must be viewer, operator or admin"))
    })?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(OperatorError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let hash = hash_password(password).map_err(OperatorError::Invalid)?;
    if !state.create_operator(name, role.as_str(), &hash).await? {
        return Err(OperatorError::Exists(name.to_string()));
    }
    state
        .append_audit(
            actor,
            "operator.added",
            name,
            &json!({ "role": role.as_str() }),
        )
        .await?;
    Ok(())
}

/// Disables (ending its sessions) or enables operator `name`; audited with `actor`.
pub async fn set_disabled(
    state: &StateStore,
    name: &str,
    disabled: bool,
    actor: &str,
) -> Result<(), OperatorError> {
    if !state.set_operator_disabled(name, disabled).await? {
        return Err(OperatorError::Unknown(name.to_string()));
    }
    let action = if disabled {
        "operator.disabled"
    } else {
        "operator.enabled"
    };
    state.append_audit(actor, action, name, &json!({})).await?;
    Ok(())
}
