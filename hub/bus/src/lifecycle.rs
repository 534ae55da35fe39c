//! Process lifecycle: stop on SIGTERM/SIGINT, let in-flight work finish, flush, exit cleanly.
//!
//! Every long-running task of a process is spawned on the [`Lifecycle`]'s tracker and watches
//! its token. On a signal the token is cancelled: intake stops (listeners close, consumers stop
//! fetching), work already started runs to its end (a send waits for its delivery report, a
//! consumer commits what it finished), then the producer is flushed. [`Lifecycle::drain`]
//! returns once that is done or the grace period has passed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Producer;

/// Shared by every task of the process.
#[derive(Clone, Default)]
pub struct Lifecycle {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// How the drain went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Tasks still running when the grace period ran out (0 on a clean drain).
    pub tasks_abandoned: usize,
    /// Records the producer still held after its flush (0 on a clean drain).
    pub records_unflushed: i32,
}

impl DrainReport {
    pub fn is_clean(&self) -> bool {
        self.tasks_abandoned == 0 && self.records_unflushed == 0
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when the process is asked to stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// True once shutdown has begun: stop taking new work.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Runs `task` as part of the process; [`Lifecycle::drain`] waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Begins shutdown (as a signal would).
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Cancels the token on the first SIGTERM or SIGINT.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let token = self.token.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                () = token.cancelled() => return,
            };
            tracing::info!(
                signal = name,
                "shutdown requested: stopping intake, finishing in-flight work"
            );
            token.cancel();
        });
        Ok(())
    }

    /// Waits for shutdown to be requested, then for the tracked tasks (up to `grace`), then
    /// flushes `producer` with what is left of `grace`.
    pub async fn drain(&self, producer: Option<&Producer>, grace: Duration) -> DrainReport {
        self.token.cancelled().await;
        let deadline = tokio::time::Instant::now() + grace;
        self.tracker.close();
        let tasks_abandoned = match tokio::time::timeout_at(deadline, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        };
        let records_unflushed = match producer {
            Some(p) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                // A flush that times out is reported through the count, not as an error.
                let _ = p.flush(left.max(Duration::from_millis(100))).await;
                p.in_flight()
            }
            None => 0,
        };
        DrainReport {
            tasks_abandoned,
            records_unflushed,
        }
    }
}
