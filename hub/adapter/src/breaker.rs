//! A circuit breaker per partner.
//!
//! Closed: requests flow; each failure of the partner (transport error, timeout, 5xx, 429)
//! counts, each success resets the count. At `failures` in a row it opens: no request goes out
//! for `open_for`. Then it is half-open: exactly one probe request is let through; its success
//! closes the breaker, its failure opens it again for another `open_for`. A business refusal
//! (a permanent answer code) is the partner working correctly and counts as a success.
//!
//! Written here rather than taken from a crate because the egress needs to *wait* for the
//! breaker (a message is not failed while the partner is known to be down; it waits without
//! spending its retry budget on attempts), which the circuit-breaker crates' call-wrapping
//! APIs do not offer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state, as shown on metrics and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send; report the result with [`Breaker::record`].
    Go { probe: bool },
    /// Do not send; ask again after this long.
    Wait(Duration),
}

impl Breaker {
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                open_until: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a request go out now?
    pub fn permit(&self) -> Permit {
        let mut s = self.lock();
        match s.open_until {
            None => Permit::Go { probe: false },
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Permit::Wait(until - now)
                } else if s.probe_in_flight {
                    // Another request is probing; check again shortly.
                    Permit::Wait(self.open_for.min(Duration::from_millis(200)))
                } else {
                    s.probe_in_flight = true;
                    Permit::Go { probe: true }
                }
            }
        }
    }

    /// The result of a request let through by [`Breaker::permit`].
    pub fn record(&self, partner_ok: bool, probe: bool) {
        let mut s = self.lock();
        if probe {
            s.probe_in_flight = false;
        }
        if partner_ok {
            s.consecutive_failures = 0;
            s.open_until = None;
            return;
        }
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        if probe || s.consecutive_failures >= self.failures {
            s.open_until = Some(Instant::now() + self.open_for);
        }
    }

    /// A probe that never reported (its task was cancelled) must not block the breaker.
    pub fn abandon_probe(&self) {
        self.lock().probe_in_flight = false;
    }

    pub fn state(&self) -> BreakerState {
        let s = self.lock();
        match s.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_secs(60));
        b.record(false, false);
        b.record(false, false);
        b.record(true, false);
        b.record(false, false);
        b.record(false, false);
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(false, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.permit(), Permit::Wait(_)));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_result_decides() {
        let b = Breaker::new(1, Duration::from_millis(0));
        b.record(false, false);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.permit(), Permit::Go { probe: true });
        assert!(
            matches!(b.permit(), Permit::Wait(_)),
            "only one probe at a time"
        );
        b.record(false, true);
        assert_eq!(
            b.permit(),
            Permit::Go { probe: true },
            "open again, then a new probe"
        );
        b.record(true, true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(), Permit::Go { probe: false });
    }

    #[test]
    fn an_abandoned_probe_frees_the_half_open_slot() {
        let b = Breaker::new(1, Duration::from_millis(0));
        b.record(false, false);
        assert_eq!(b.permit(), Permit::Go { probe: true });
        b.abandon_probe();
        assert_eq!(b.permit(), Permit::Go { probe: true });
    }
}
