//! The simulator kit: everything a partner-platform simulator shares, so that a partner's
//! simulator is only its state machine, its data generator and its codes.
//!
//! - [`server`]: one HTTP listener for the partner's API and the control API, a task per
//!   connection so a planned fault can reset a connection; handlers answer a [`Reply`] through
//!   the [`Conn`] extractor.
//! - [`auth`]: the partner side of authentication, one module per scheme behind the
//!   [`auth::Verifier`] (the hub's calls) and [`auth::Signer`] (the partner's pushes) traits;
//!   today `hub-v1` ([`auth::hub_v1`]).
//! - [`Kit`] ([`kit`]): the partner's state behind one lock and the call pipeline —
//!   authentication, idempotency-key de-duplication (the stored first answer), planned faults,
//!   the partner's [`Decision`], counters ([`Stats`]) — plus pushes and background tasks.
//! - [`faults`]: the fault book (delays, holds, 5xx, 429, resets, business refusals, wrong
//!   signatures; and wrongly signed pushes).
//! - [`push`]: pushes to the hub's gateway with a stable partner message id, retried with
//!   jittered backoff.
//! - [`control`]: `/sim/stats`, `/sim/faults`, `/sim/bad_signatures`.
//! - [`state`]: the state file (partner objects, stored answers, used nonces), written
//!   atomically (temporary file, then rename) and restored at start.
//! - [`codes`]: the partner's business codes and envelope, the one trait a partner must write.
//! - [`time`], [`cli`]: Shanghai wire times; durations, logs and the push loop of a `serve`
//!   command.
//!
//! A partner's simulator (see `adapters/sim-kit/README.md` and `adapters/hotline12345/simulator`)
//! implements [`Codes`] and [`PartnerState`], picks a fault-rule type (the kit's [`FaultRule`]
//! or its own), builds a [`Kit`], and routes each API call through [`Kit::handle`] with a
//! closure that decides the business answer under the lock.

pub mod auth;
pub mod cli;
pub mod codes;
pub mod control;
pub mod faults;
pub mod kit;
pub mod push;
pub mod server;
pub mod state;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;

pub use codes::Codes;
pub use faults::{Fault, FaultBook, FaultRule, Rule};
pub use kit::{Call, CallKind, Core, Decision, Kit, KitConfig, NoHub, Stats, IDEMPOTENCY_KEY};
pub use push::{Push, PushOutcome, PushRecord, RetryConfig, PARTNER_MESSAGE_ID};
pub use server::{Conn, Reply};
pub use state::PartnerState;

/// Binds `listen` (port 0: a free port) and serves `partner` routes merged with the kit's
/// control routes until `kit` is shut down. Returns the bound address and the accept loop's
/// task.
pub async fn listen<S: PartnerState, R: Rule>(
    kit: &Arc<Kit<S, R>>,
    listen: SocketAddr,
    partner: axum::Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = partner.merge(control::routes(Arc::clone(kit)));
    let task = tokio::spawn(server::serve(
        listener,
        app,
        kit.cancel.clone(),
        kit.tasks.clone(),
    ));
    Ok((addr, task))
}
