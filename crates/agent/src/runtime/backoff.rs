//! Restart back-off, modelled on the kubelet's per-container `flowcontrol.Backoff`.
//!
//! The kubelet restarts a container the first time it exits without waiting, then waits
//! 10 s, 20 s, 40 s, … capped at 5 min (the `CrashLoopBackOff` state). A container that
//! ran longer than twice the cap before exiting starts the sequence afresh. The timings
//! are configurable so tests can use milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first non-zero delay (kubelet: 10 s).
    pub initial: Duration,
    /// The cap (kubelet: 5 min).
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

/// One container's back-off state; persisted with the container so a restarted agent
/// keeps the pace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay before the next restart; `None` until the first exit.
    #[serde(default)]
    next_ms: Option<u64>,
}

impl Backoff {
    /// The delay before restarting a container that exited after running for `ran_for`,
    /// and advances the sequence.
    pub fn next_delay(&mut self, policy: &BackoffPolicy, ran_for: Duration) -> Duration {
        if ran_for > policy.max.saturating_mul(2) {
            self.next_ms = None;
        }
        match self.next_ms {
            None => {
                self.next_ms = Some(millis(policy.initial.min(policy.max)));
                Duration::ZERO
            }
            Some(ms) => {
                let delay = Duration::from_millis(ms);
                self.next_ms = Some(millis(delay.saturating_mul(2).min(policy.max)));
                delay
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_sequence() {
        let policy = BackoffPolicy::default();
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..9)
            .map(|_| {
                backoff
                    .next_delay(&policy, Duration::from_secs(1))
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_sequence() {
        let policy = BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        let mut backoff = Backoff::default();
        let short = Duration::from_millis(1);
        for _ in 0..5 {
            backoff.next_delay(&policy, short);
        }
        assert_eq!(
            backoff.next_delay(&policy, short),
            Duration::from_millis(400)
        );
        // Ran longer than twice the cap: treated as a fresh first crash.
        assert_eq!(
            backoff.next_delay(&policy, Duration::from_millis(900)),
            Duration::ZERO
        );
        assert_eq!(
            backoff.next_delay(&policy, short),
            Duration::from_millis(100)
        );
    }
}
