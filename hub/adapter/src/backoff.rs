//! Exponential backoff with full jitter.
//!
//! The n-th wait (n ≥ 1) is uniform in `[0, min(max, initial × 2^(n-1))]` ("full jitter", as
//! described in the AWS Architecture Blog's "Exponential Backoff and Jitter"): retries of many
//! messages that failed together spread out instead of returning in step to a partner that is
//! just recovering.

use std::time::Duration;

/// The wait before retry number `retry` (1 for the first retry).
pub fn full_jitter(initial: Duration, max: Duration, retry: u32) -> Duration {
    let cap = ceiling(initial, max, retry);
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// The upper bound of the n-th wait.
pub fn ceiling(initial: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_maximum() {
        let (i, m) = (Duration::from_millis(100), Duration::from_millis(1_000));
        let caps: Vec<u128> = (1..=6).map(|n| ceiling(i, m, n).as_millis()).collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(ceiling(i, m, 200), m, "no overflow on many retries");
    }

    #[test]
    fn waits_stay_within_the_ceiling_and_spread_out() {
        let (i, m) = (Duration::from_millis(100), Duration::from_millis(1_000));
        let waits: Vec<Duration> = (0..200).map(|_| full_jitter(i, m, 4)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(800)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 20,
            "full jitter spreads waits over the range"
        );
    }
}
