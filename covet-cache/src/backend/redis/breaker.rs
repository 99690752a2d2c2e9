//! The circuit breaker in front of a remote backend.
//!
//! Closed: every call goes through; connection-level failures are counted,
//! any answer from the server resets the count. After `threshold`
//! consecutive failures it opens: calls fail at once, without touching the
//! network, for `cool_down`. Then it is half-open: one call (the probe) goes
//! through while the others keep failing fast; the probe's success closes
//! the breaker, its failure opens it for another `cool_down`.
//!
//! The state machine takes the current time as an argument, so it is tested
//! without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Closed: go ahead.
    Call,
    /// Half-open and this call is the probe: go ahead, and report back.
    Probe,
    /// Open (or a probe is in flight): fail now; the next probe may go after this long.
    Reject(Duration),
}

pub(crate) struct Breaker {
    /// 0 disables the breaker.
    threshold: u32,
    cool_down: Duration,
    /// Consecutive connection-level failures while closed.
    failures: AtomicU32,
    /// Fast path: `false` while closed, so a healthy call takes no lock.
    tripped: AtomicBool,
    phase: Mutex<Phase>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("threshold", &self.threshold)
            .field("cool_down", &self.cool_down)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .field("phase", &*self.phase.lock())
            .finish()
    }
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Breaker {
        Breaker {
            threshold,
            cool_down,
            failures: AtomicU32::new(0),
            tripped: AtomicBool::new(false),
            phase: Mutex::new(Phase::Closed),
        }
    }

    /// Whether a call may go to the server now.
    #[inline]
    pub(crate) fn admit(&self, now: Instant) -> Admit {
        if !self.tripped.load(Ordering::Acquire) {
            return Admit::Call;
        }
        let mut phase = self.phase.lock();
        match *phase {
            Phase::Closed => Admit::Call,
            Phase::Open { until } if now >= until => {
                *phase = Phase::HalfOpen;
                Admit::Probe
            }
            Phase::Open { until } => Admit::Reject(until - now),
            // Someone else is probing; their answer decides.
            Phase::HalfOpen => Admit::Reject(Duration::ZERO),
        }
    }

    /// The server answered (even with an error such as `WRONGTYPE`).
    #[inline]
    pub(crate) fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.tripped.load(Ordering::Acquire) {
            let mut phase = self.phase.lock();
            *phase = Phase::Closed;
            self.failures.store(0, Ordering::Relaxed);
            self.tripped.store(false, Ordering::Release);
            tracing::info!("redis answers again; circuit breaker closed");
        }
    }

    /// A connection-level failure (refused, reset, timed out...).
    /// Returns `true` if this failure opened the breaker.
    pub(crate) fn failure(&self, now: Instant, probe: bool) -> bool {
        if self.threshold == 0 {
            return false;
        }
        if probe {
            *self.phase.lock() = Phase::Open {
                until: now + self.cool_down,
            };
            return false;
        }
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n < self.threshold {
            return false;
        }
        let mut phase = self.phase.lock();
        if *phase != Phase::Closed {
            return false;
        }
        *phase = Phase::Open {
            until: now + self.cool_down,
        };
        self.tripped.store(true, Ordering::Release);
        true
    }

    /// A probe ended without an answer either way (its future was dropped):
    /// let the next call probe at once.
    pub(crate) fn probe_abandoned(&self, now: Instant) {
        let mut phase = self.phase.lock();
        if *phase == Phase::HalfOpen {
            *phase = Phase::Open { until: now };
        }
    }

    /// Whether calls are currently refused (open or half-open).
    pub(crate) fn is_open(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    pub(crate) fn threshold(&self) -> u32 {
        self.threshold
    }
}

/// One admitted call; reports an unfinished probe when dropped.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl<'a> Permit<'a> {
    pub(crate) fn new(breaker: &'a Breaker, probe: bool) -> Permit<'a> {
        Permit {
            breaker,
            probe,
            settled: false,
        }
    }

    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    pub(crate) fn success(mut self) {
        self.settled = true;
        self.breaker.success();
    }

    /// Returns `true` if this failure opened the breaker.
    pub(crate) fn failure(mut self) -> bool {
        self.settled = true;
        self.breaker.failure(Instant::now(), self.probe)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.probe_abandoned(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(2);

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = Breaker::new(3, COOL);
        let t0 = Instant::now();
        assert_eq!(b.admit(t0), Admit::Call);
        assert!(!b.failure(t0, false));
        assert!(!b.failure(t0, false));
        // a success in between resets the count
        b.success();
        assert!(!b.failure(t0, false));
        assert!(!b.failure(t0, false));
        assert_eq!(b.admit(t0), Admit::Call);
        assert!(b.failure(t0, false), "third consecutive failure opens");
        assert!(b.is_open());
        assert_eq!(b.admit(t0), Admit::Reject(COOL));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.admit(t1), Admit::Reject(Duration::from_millis(1500)));
        // late failures of calls admitted before the trip do not extend it
        assert!(!b.failure(t1, false));
        assert_eq!(b.admit(t1), Admit::Reject(Duration::from_millis(1500)));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        assert!(b.failure(t0, false));
        let t1 = t0 + COOL;
        assert_eq!(b.admit(t1), Admit::Probe);
        // while the probe is in flight everyone else fails fast
        assert_eq!(b.admit(t1), Admit::Reject(Duration::ZERO));
        assert_eq!(b.admit(t1 + COOL * 10), Admit::Reject(Duration::ZERO));
    }

    #[test]
    fn failed_probe_reopens_for_another_cool_down() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        b.failure(t0, false);
        let t1 = t0 + COOL + Duration::from_millis(1);
        assert_eq!(b.admit(t1), Admit::Probe);
        assert!(!b.failure(t1, true));
        assert!(b.is_open());
        assert_eq!(b.admit(t1), Admit::Reject(COOL));
        assert_eq!(b.admit(t1 + COOL), Admit::Probe);
    }

    #[test]
    fn successful_probe_closes() {
        let b = Breaker::new(2, COOL);
        let t0 = Instant::now();
        b.failure(t0, false);
        b.failure(t0, false);
        assert_eq!(b.admit(t0 + COOL), Admit::Probe);
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.admit(t0 + COOL), Admit::Call);
        // the failure count starts again from zero
        assert!(!b.failure(t0 + COOL, false));
        assert_eq!(b.admit(t0 + COOL), Admit::Call);
        assert!(b.failure(t0 + COOL, false));
    }

    #[test]
    fn abandoned_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        b.failure(t0, false);
        let t1 = t0 + COOL;
        assert_eq!(b.admit(t1), Admit::Probe);
        {
            let _permit = Permit::new(&b, true); // dropped unsettled
        }
        assert_eq!(b.admit(Instant::now().max(t1)), Admit::Probe);
    }

    #[test]
    fn zero_threshold_disables() {
        let b = Breaker::new(0, COOL);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!b.failure(t0, false));
        }
        assert_eq!(b.admit(t0), Admit::Call);
    }

    #[test]
    fn real_durations() {
        let b = Breaker::new(1, Duration::from_millis(30));
        assert!(Permit::new(&b, false).failure());
        assert!(matches!(b.admit(Instant::now()), Admit::Reject(_)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(Instant::now()), Admit::Probe);
        Permit::new(&b, true).success();
        assert_eq!(b.admit(Instant::now()), Admit::Call);
    }
}
