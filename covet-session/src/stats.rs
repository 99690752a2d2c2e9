//! Session statistics: what the layer saw, counted per [`SessionLayer`]
//! (every clone of a layer, and every service it built, shares one set of
//! counters). With the `metrics` feature, each count also increments
//! `covet_sessions_total{event}` (see `covet::metrics`).
//!
//! [`SessionLayer`]: crate::SessionLayer

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of a [`SessionLayer`](crate::SessionLayer), from
/// [`SessionLayer::stats`](crate::SessionLayer::stats).
///
/// Idle expiry happens in the store (a TTL in Redis and memory, a filter in
/// SQL, a sealed deadline in a cookie), which reports an idle-expired id as
/// unknown: such ids count in [`unknown_ids`](Self::unknown_ids), and
/// [`expired_idle`](Self::expired_idle) counts the sessions the layer
/// itself finds past their idle deadline.
///
/// ```
/// use covet_session::{MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new());
/// let stats = layer.stats();
/// assert_eq!(stats.created, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Sessions created (a first save).
    pub created: u64,
    /// Requests whose presented session loaded.
    pub loaded: u64,
    /// Saves of an existing session (changes, or a renewal write).
    pub saved: u64,
    /// Sessions deleted by the application (`logout`, `delete`, `clear`
    /// and save).
    pub deleted: u64,
    /// Sessions found past their idle timeout.
    pub expired_idle: u64,
    /// Sessions refused (and deleted) past their absolute timeout.
    pub expired_absolute: u64,
    /// Session ids rotated (`cycle_id`, `login`).
    pub rotated: u64,
    /// Presented ids that no store knows (expired, revoked or forged).
    pub unknown_ids: u64,
    /// Session cookies that are no id the store issues, and `Cookie`
    /// headers that are not text.
    pub malformed_cookies: u64,
    /// Stored sessions that did not decode (deleted; a fresh session
    /// started).
    pub corrupt_records: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Unsafe requests refused by `CsrfLayer`.
    pub csrf_rejections: u64,
    /// Sessions presented by another client than the one they were bound
    /// to.
    pub binding_mismatches: u64,
}

impl SessionStats {
    /// Every count with its event name (the `event` label of
    /// `covet_sessions_total`), for a statistics page or an exporter.
    ///
    /// ```
    /// use covet_session::SessionStats;
    ///
    /// let names: Vec<_> = SessionStats::default().counts().map(|(name, _)| name).collect();
    /// assert!(names.contains(&"created") && names.contains(&"csrf_rejected"));
    /// ```
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
        let mut s = *self;
        ALL.into_iter().map(move |e| (e.name(), *s.count_mut(e)))
    }

    /// The count of `event`: the one place events meet fields.
    fn count_mut(&mut self, event: Event) -> &mut u64 {
        match event {
            Event::Created => &mut self.created,
            Event::Loaded => &mut self.loaded,
            Event::Saved => &mut self.saved,
            Event::Deleted => &mut self.deleted,
            Event::ExpiredIdle => &mut self.expired_idle,
            Event::ExpiredAbsolute => &mut self.expired_absolute,
            Event::Rotated => &mut self.rotated,
            Event::UnknownId => &mut self.unknown_ids,
            Event::MalformedCookie => &mut self.malformed_cookies,
            Event::CorruptRecord => &mut self.corrupt_records,
            Event::StoreError => &mut self.store_errors,
            Event::CsrfRejected => &mut self.csrf_rejections,
            Event::BindingMismatch => &mut self.binding_mismatches,
        }
    }
}

const ALL: [Event; EVENTS] = [
    Event::Created,
    Event::Loaded,
    Event::Saved,
    Event::Deleted,
    Event::ExpiredIdle,
    Event::ExpiredAbsolute,
    Event::Rotated,
    Event::UnknownId,
    Event::MalformedCookie,
    Event::CorruptRecord,
    Event::StoreError,
    Event::CsrfRejected,
    Event::BindingMismatch,
];

/// What happened, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Created,
    Loaded,
    Saved,
    Deleted,
    ExpiredIdle,
    ExpiredAbsolute,
    Rotated,
    UnknownId,
    MalformedCookie,
    CorruptRecord,
    StoreError,
    CsrfRejected,
    BindingMismatch,
}

const EVENTS: usize = 13;

impl Event {
    /// The `event` label of `covet_sessions_total`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::Loaded => "loaded",
            Event::Saved => "saved",
            Event::Deleted => "deleted",
            Event::ExpiredIdle => "expired_idle",
            Event::ExpiredAbsolute => "expired_absolute",
            Event::Rotated => "rotated",
            Event::UnknownId => "unknown_id",
            Event::MalformedCookie => "malformed_cookie",
            Event::CorruptRecord => "corrupt_record",
            Event::StoreError => "store_error",
            Event::CsrfRejected => "csrf_rejected",
            Event::BindingMismatch => "binding_mismatch",
        }
    }
}

/// The counters behind [`SessionStats`], striped: each thread counts in
/// one of [`STRIPES`] cache-line-aligned sets of cells and a snapshot adds
/// them up. Every request counts twice or more; with one shared set, two
/// cores serving requests would pass the same cache line back and forth on
/// every request.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    stripes: [Stripe; STRIPES],
}

/// Sets of cells; threads beyond this share them (still correct, just
/// shared again).
const STRIPES: usize = 8;

/// One thread's cells, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    cells: [AtomicU64; EVENTS],
}

/// This thread's stripe: threads take the next one in turn when they
/// first count.
fn stripe() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Counters {
    /// Counts `event` (and, with the `metrics` feature, reports it).
    pub(crate) fn record(&self, event: Event) {
        self.stripes[stripe()].cells[event as usize].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("covet_sessions_total", "event" => event.name()).increment(1);
    }

    pub(crate) fn snapshot(&self) -> SessionStats {
        let mut stats = SessionStats::default();
        for e in ALL {
            *stats.count_mut(e) = self
                .stripes
                .iter()
                .map(|s| s.cells[e as usize].load(Ordering::Relaxed))
                .sum();
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_cell_and_name() {
        let counters = Counters::default();
        for (i, e) in ALL.iter().enumerate() {
            for _ in 0..=i {
                counters.record(*e);
            }
        }
        let counts: Vec<_> = counters.snapshot().counts().collect();
        assert_eq!(counts.len(), EVENTS);
        for (i, (name, n)) in counts.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1, "{name}");
            assert_eq!(*name, ALL[i].name());
        }
        let names: std::collections::HashSet<_> = counts.iter().map(|(name, _)| name).collect();
        assert_eq!(names.len(), EVENTS);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let counters = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..2 * STRIPES + 3)
            .map(|_| {
                let c = std::sync::Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.record(Event::Loaded);
                        c.record(Event::Saved);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = counters.snapshot();
        let threads = (2 * STRIPES + 3) as u64;
        assert_eq!(
            (stats.loaded, stats.saved),
            (threads * 1000, threads * 1000)
        );
        assert_eq!(stats.created, 0);
    }
}
