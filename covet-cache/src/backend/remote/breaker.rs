//! The circuit breaker in front of a remote backend.
//!
//! Closed: every call goes through; connection-level failures are counted,
//! any answer from the server resets the count. After `threshold`
//! consecutive failures it opens: calls fail at once, without touching the
//! network, for `cool_down`. Then it is half-open: one call (the probe) goes
//! through while the others keep failing fast; the probe's success closes
//! the breaker, its failure opens it for another `cool_down`.
//!
//! Every change of phase starts a new generation, and each call carries the
//! generation it was admitted in: the outcome of a call admitted before the
//! last change (a late success or failure of a call that started while
//! the breaker was closed) never moves the breaker. Only the probe of the
//! current half-open phase closes or re-opens it. The phase and the
//! lock-free `tripped` flag change together, under the lock.
//!
//! The state machine takes the current time as an argument, so it is tested
//! without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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
    /// Fast path: `false` exactly while closed, so a healthy call takes no
    /// lock.
    tripped: AtomicBool,
    /// Bumped at every change of phase (under the lock).
    generation: AtomicU64,
    phase: Mutex<Phase>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("threshold", &self.threshold)
            .field("cool_down", &self.cool_down)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .field("phase", &*self.phase.lock())
            .field("generation", &self.generation.load(Ordering::Relaxed))
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
            generation: AtomicU64::new(0),
            phase: Mutex::new(Phase::Closed),
        }
    }

    /// Moves to `next` in a new generation, keeping `tripped` in step
    /// (called with the phase locked).
    fn enter(&self, phase: &mut Phase, next: Phase) -> u64 {
        *phase = next;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.tripped.store(next != Phase::Closed, Ordering::Release);
        if next == Phase::Closed {
            self.failures.store(0, Ordering::Relaxed);
        }
        generation
    }

    fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a call may go to the server now, and the generation it is
    /// admitted in.
    #[inline]
    pub(crate) fn admit(&self, now: Instant) -> (Admit, u64) {
        if !self.tripped.load(Ordering::Acquire) {
            return (Admit::Call, self.current());
        }
        let mut phase = self.phase.lock();
        match *phase {
            Phase::Closed => (Admit::Call, self.current()),
            Phase::Open { until } if now >= until => {
                let generation = self.enter(&mut phase, Phase::HalfOpen);
                (Admit::Probe, generation)
            }
            Phase::Open { until } => (Admit::Reject(until - now), self.current()),
            // Someone else is probing; their answer decides.
            Phase::HalfOpen => (Admit::Reject(Duration::ZERO), self.current()),
        }
    }

    /// The server answered (even with an error such as `WRONGTYPE`) a call
    /// admitted in `generation`.
    #[inline]
    pub(crate) fn success(&self, generation: u64, probe: bool) {
        if !self.tripped.load(Ordering::Acquire) {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let mut phase = self.phase.lock();
        // Only the current probe closes; a late success of a call admitted
        // before the trip says nothing about the server now.
        if probe && self.current() == generation && *phase == Phase::HalfOpen {
            self.enter(&mut phase, Phase::Closed);
            tracing::info!("the server answers again; circuit breaker closed");
        }
    }

    /// A connection-level failure (refused, reset, timed out...) of a call
    /// admitted in `generation`. Returns `true` if this failure opened the
    /// breaker.
    pub(crate) fn failure(&self, now: Instant, generation: u64, probe: bool) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut phase = self.phase.lock();
        if self.current() != generation {
            // Admitted before the last change: already accounted for.
            return false;
        }
        if probe {
            if *phase == Phase::HalfOpen {
                self.enter(
                    &mut phase,
                    Phase::Open {
                        until: now + self.cool_down,
                    },
                );
            }
            return false;
        }
        if *phase != Phase::Closed {
            return false;
        }
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n < self.threshold {
            return false;
        }
        self.enter(
            &mut phase,
            Phase::Open {
                until: now + self.cool_down,
            },
        );
        true
    }

    /// A probe admitted in `generation` ended without an answer either way
    /// (its future was dropped): let the next call probe at once.
    pub(crate) fn probe_abandoned(&self, now: Instant, generation: u64) {
        let mut phase = self.phase.lock();
        if *phase == Phase::HalfOpen && self.current() == generation {
            self.enter(&mut phase, Phase::Open { until: now });
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
    generation: u64,
    probe: bool,
    settled: bool,
}

impl<'a> Permit<'a> {
    pub(crate) fn new(breaker: &'a Breaker, generation: u64, probe: bool) -> Permit<'a> {
        Permit {
            breaker,
            generation,
            probe,
            settled: false,
        }
    }

    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    pub(crate) fn success(mut self) {
        self.settled = true;
        self.breaker.success(self.generation, self.probe);
    }

    /// Returns `true` if this failure opened the breaker.
    pub(crate) fn failure(mut self) -> bool {
        self.settled = true;
        self.breaker
            .failure(Instant::now(), self.generation, self.probe)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker
                .probe_abandoned(Instant::now(), self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(2);

    /// A call admitted at `now`: what it got and its generation.
    fn admit(b: &Breaker, now: Instant) -> (Admit, u64) {
        b.admit(now)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = Breaker::new(3, COOL);
        let t0 = Instant::now();
        let (a, g) = admit(&b, t0);
        assert_eq!(a, Admit::Call);
        assert!(!b.failure(t0, g, false));
        assert!(!b.failure(t0, g, false));
        // a success in between resets the count
        b.success(g, false);
        assert!(!b.failure(t0, g, false));
        assert!(!b.failure(t0, g, false));
        assert!(b.failure(t0, g, false), "third consecutive failure opens");
        assert!(b.is_open());
        assert_eq!(admit(&b, t0).0, Admit::Reject(COOL));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(admit(&b, t1).0, Admit::Reject(Duration::from_millis(1500)));
        // late failures of calls admitted before the trip do not extend it
        assert!(!b.failure(t1, g, false));
        assert_eq!(admit(&b, t1).0, Admit::Reject(Duration::from_millis(1500)));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        let (_, g) = admit(&b, t0);
        assert!(b.failure(t0, g, false));
        let t1 = t0 + COOL;
        assert_eq!(admit(&b, t1).0, Admit::Probe);
        // while the probe is in flight everyone else fails fast
        assert_eq!(admit(&b, t1).0, Admit::Reject(Duration::ZERO));
        assert_eq!(admit(&b, t1 + COOL * 10).0, Admit::Reject(Duration::ZERO));
    }

    #[test]
    fn failed_probe_reopens_for_another_cool_down() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        let (_, g) = admit(&b, t0);
        b.failure(t0, g, false);
        let t1 = t0 + COOL + Duration::from_millis(1);
        let (a, probe) = admit(&b, t1);
        assert_eq!(a, Admit::Probe);
        assert!(!b.failure(t1, probe, true));
        assert!(b.is_open());
        assert_eq!(admit(&b, t1).0, Admit::Reject(COOL));
        assert_eq!(admit(&b, t1 + COOL).0, Admit::Probe);
    }

    #[test]
    fn successful_probe_closes() {
        let b = Breaker::new(2, COOL);
        let t0 = Instant::now();
        let (_, g) = admit(&b, t0);
        b.failure(t0, g, false);
        b.failure(t0, g, false);
        let (a, probe) = admit(&b, t0 + COOL);
        assert_eq!(a, Admit::Probe);
        b.success(probe, true);
        assert!(!b.is_open());
        let (a, g) = admit(&b, t0 + COOL);
        assert_eq!(a, Admit::Call);
        // the failure count starts again from zero
        assert!(!b.failure(t0 + COOL, g, false));
        assert!(b.failure(t0 + COOL, g, false));
    }

    /// The defect: a late success of a call admitted before the trip
    /// closed the breaker behind the phase's back; the failing probe then
    /// re-opened the phase without the flag, and no failure ever opened it
    /// again.
    #[test]
    fn a_late_success_then_a_failing_probe_keeps_the_breaker_working() {
        let b = Breaker::new(2, COOL);
        let t0 = Instant::now();
        let (_, early) = admit(&b, t0); // admitted while closed, answers late
        let (_, g) = admit(&b, t0);
        b.failure(t0, g, false);
        assert!(b.failure(t0, g, false), "tripped");
        let t1 = t0 + COOL;
        let (a, probe) = admit(&b, t1);
        assert_eq!(a, Admit::Probe);
        // The early call's success arrives now: it must not close.
        b.success(early, false);
        assert!(b.is_open());
        assert_eq!(admit(&b, t1).0, Admit::Reject(Duration::ZERO));
        // The probe fails: open again, for real.
        b.failure(t1, probe, true);
        assert!(b.is_open());
        assert_eq!(admit(&b, t1).0, Admit::Reject(COOL));
        // Later: a probe succeeds, then failures trip it once more.
        let t2 = t1 + COOL;
        let (_, probe) = admit(&b, t2);
        b.success(probe, true);
        assert!(!b.is_open());
        let (_, g) = admit(&b, t2);
        b.failure(t2, g, false);
        assert!(b.failure(t2, g, false), "the breaker still trips");
        assert!(b.is_open());
    }

    #[test]
    fn stale_outcomes_never_move_the_breaker() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        let (_, old) = admit(&b, t0);
        let (_, g) = admit(&b, t0);
        assert!(b.failure(t0, g, false));
        // A second probe result from an older generation (abandoned and
        // replaced) changes nothing.
        let t1 = t0 + COOL;
        let (_, first_probe) = admit(&b, t1);
        b.probe_abandoned(t1, first_probe);
        let (a, second_probe) = admit(&b, t1);
        assert_eq!(a, Admit::Probe);
        b.success(first_probe, true);
        assert!(
            b.is_open(),
            "an abandoned probe's late answer does not close"
        );
        b.failure(t1, old, false);
        assert_eq!(admit(&b, t1).0, Admit::Reject(Duration::ZERO));
        b.success(second_probe, true);
        assert!(!b.is_open());
    }

    #[test]
    fn abandoned_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, COOL);
        let t0 = Instant::now();
        let (_, g) = admit(&b, t0);
        b.failure(t0, g, false);
        let t1 = t0 + COOL;
        let (a, probe) = admit(&b, t1);
        assert_eq!(a, Admit::Probe);
        {
            let _permit = Permit::new(&b, probe, true); // dropped unsettled
        }
        assert_eq!(admit(&b, Instant::now().max(t1)).0, Admit::Probe);
    }

    #[test]
    fn zero_threshold_disables() {
        let b = Breaker::new(0, COOL);
        let t0 = Instant::now();
        let (_, g) = admit(&b, t0);
        for _ in 0..100 {
            assert!(!b.failure(t0, g, false));
        }
        assert_eq!(admit(&b, t0).0, Admit::Call);
    }

    #[test]
    fn real_durations() {
        let b = Breaker::new(1, Duration::from_millis(30));
        let (_, g) = b.admit(Instant::now());
        assert!(Permit::new(&b, g, false).failure());
        assert!(matches!(b.admit(Instant::now()).0, Admit::Reject(_)));
        std::thread::sleep(Duration::from_millis(40));
        let (a, probe) = b.admit(Instant::now());
        assert_eq!(a, Admit::Probe);
        Permit::new(&b, probe, true).success();
        assert_eq!(b.admit(Instant::now()).0, Admit::Call);
    }
}
