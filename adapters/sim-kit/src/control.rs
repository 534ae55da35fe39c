//! The `/sim/...` control and statistics API every simulator has, beside the partner's own
//! control routes (its objects). Unsigned, for local use only: bind simulators to 127.0.0.1.
//!
//! | call | what |
//! |---|---|
//! | `GET /sim/stats` | the counters ([`crate::Stats`]) |
//! | `GET /sim/faults` | the fault rules in force |
//! | `POST /sim/faults` | adds a rule (the partner's rule shape); 400 when it does not read |
//! | `DELETE /sim/faults` | clears every rule (204) |
//! | `POST /sim/bad_signatures` | `{"count": n}`: the next n pushes are signed with a wrong key |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Rule;
use crate::kit::Kit;
use crate::state::PartnerState;

/// The kit's control routes for `kit`, to merge with the partner's router.
pub fn routes<S: PartnerState, R: Rule>(kit: Arc<Kit<S, R>>) -> Router {
    Router::new()
        .route("/sim/stats", get(stats::<S, R>))
        .route(
            "/sim/faults",
            get(faults::<S, R>)
                .post(add_fault::<S, R>)
                .delete(clear_faults::<S, R>),
        )
        .route("/sim/bad_signatures", post(bad_signatures::<S, R>))
        .with_state(kit)
}

/// `400 {"error": …}`.
pub fn bad_request(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

async fn stats<S: PartnerState, R: Rule>(State(kit): State<Arc<Kit<S, R>>>) -> Response {
    Json(kit.stats()).into_response()
}

async fn faults<S: PartnerState, R: Rule>(State(kit): State<Arc<Kit<S, R>>>) -> Response {
    Json(kit.faults()).into_response()
}

async fn add_fault<S: PartnerState, R: Rule>(
    State(kit): State<Arc<Kit<S, R>>>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<R>(&body) {
        Ok(rule) => {
            kit.inject(rule.clone());
            Json(rule).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn clear_faults<S: PartnerState, R: Rule>(State(kit): State<Arc<Kit<S, R>>>) -> Response {
    kit.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Count {
    count: u32,
}

async fn bad_signatures<S: PartnerState, R: Rule>(
    State(kit): State<Arc<Kit<S, R>>>,
    body: Bytes,
) -> Response {
    let Ok(Count { count }) = serde_json::from_slice::<Count>(&body) else {
        return bad_request("write {\"count\": n}");
    };
    match kit.sign_wrongly(count) {
        Ok(()) => Json(json!({ "bad_signatures_planned": count })).into_response(),
        Err(_) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": "no hub to push to (no hub URL, or pushes are off)" })),
        )
            .into_response(),
    }
}
