//! The front of a [`Tiered`](super::Tiered) cache: L1 with the counters
//! that keep a racing read from copying an old value back in, the
//! invalidations every L1 applies, and the state of the coherence link.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backend::{CacheBackend, Decoded, Entry};
use crate::epochs::Epochs;

// ---- what to drop from L1 ---------------------------------------------------

/// An invalidation: what a write, delete, pattern delete, tag invalidation
/// or clear asks every L1 to drop. It is also the body of a coherence
/// message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Invalidate<'a> {
    /// These keys.
    Keys(Vec<Cow<'a, str>>),
    /// Keys matching a glob.
    Pattern(Cow<'a, str>),
    /// Keys starting with a prefix (`""`: everything).
    Prefix(Cow<'a, str>),
    /// Keys stored with a tag: exactly `keys` when L2 listed them,
    /// otherwise the tag's whole namespace.
    Tag {
        tag: Cow<'a, str>,
        keys: Option<Vec<Cow<'a, str>>>,
    },
}

impl Invalidate<'_> {
    /// The namespace the invalidation is about (the text before the first
    /// `:`), which names its channel.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // channels name by namespace
    pub(crate) fn namespace(&self) -> &str {
        let s: &str = match self {
            Invalidate::Keys(keys) => keys.first().map_or("", |k| k),
            Invalidate::Pattern(p) | Invalidate::Prefix(p) => p,
            Invalidate::Tag { tag, .. } => tag,
        };
        namespace_of(s)
    }
}

/// The text before the first `:`, or `""`.
pub(crate) fn namespace_of(s: &str) -> &str {
    s.split_once(':').map_or("", |(ns, _)| ns)
}

// ---- the L1 side ------------------------------------------------------------

/// L1 with what keeps it coherent: the invalidation counters and the state
/// of the coherence subscription. Shared with the subscriber task.
pub(crate) struct Front<L1> {
    pub(super) l1: L1,
    pub(super) epochs: Epochs,
    pub(super) l1_max_ttl: Duration,
    pub(super) link: Link,
}

impl<L1: CacheBackend> Front<L1> {
    pub(super) fn new(l1: L1, l1_max_ttl: Duration, link: Link) -> Front<L1> {
        Front {
            l1,
            epochs: Epochs::default(),
            l1_max_ttl,
            link,
        }
    }

    /// The TTL of an L1 copy of a value that lives `ttl` in L2 (`None`: no
    /// expiry). `None` keeps no copy; `Some(None)` keeps it without expiry.
    fn l1_ttl(&self, ttl: Option<Duration>) -> Option<Option<Duration>> {
        let mut cap = ttl.unwrap_or(Duration::MAX).min(self.l1_max_ttl);
        if self.link.state() == LinkState::Down {
            cap = cap.min(self.link.disconnected_ttl);
        }
        if cap.is_zero() {
            None
        } else if cap == Duration::MAX {
            Some(None)
        } else {
            Some(Some(cap))
        }
    }

    /// Writes an L1 copy, then removes it again if an invalidation of the
    /// key arrived since `epoch` was read (before L2 was asked): without
    /// that, a read racing with a write elsewhere could leave the old value
    /// in L1.
    pub(super) async fn copy_in(
        &self,
        key: &str,
        value: Bytes,
        decoded: Option<Decoded>,
        ttl: Option<Duration>,
        tags: &[String],
        epoch: u64,
    ) {
        let Some(ttl) = self.l1_ttl(ttl) else {
            self.delete_l1(key).await;
            return;
        };
        let mut entry = Entry::new(value, ttl).tags(tags);
        entry.decoded = decoded;
        if let Err(err) = self.l1.set_entry(key, entry).await {
            tracing::debug!(key = %crate::backend::traced::key_hash(key), error = %err, "L1 write failed");
            self.delete_l1(key).await;
            return;
        }
        if self.epochs.of(key) != epoch {
            self.delete_l1(key).await;
        }
    }

    pub(super) async fn delete_l1(&self, key: &str) {
        if let Err(err) = self.l1.delete(key).await {
            tracing::warn!(key = %crate::backend::traced::key_hash(key), error = %err, "L1 delete failed; flushing L1");
            self.flush().await;
        }
    }

    pub(super) async fn drop_keys(&self, keys: &[&str]) {
        for key in keys {
            self.epochs.bump_key(key);
        }
        for key in keys {
            self.delete_l1(key).await;
        }
    }

    /// Drops what `op` names from L1 (counters first, so reads in flight
    /// do not copy an old value back in).
    pub(crate) async fn apply(&self, op: &Invalidate<'_>) {
        let result = match op {
            Invalidate::Keys(keys) => {
                for key in keys {
                    self.epochs.bump_key(key);
                }
                let keys: Vec<&str> = keys.iter().map(|k| &**k).collect();
                self.l1.delete_many(&keys).await.map(drop)
            }
            Invalidate::Pattern(pattern) => {
                self.epochs.bump_all();
                self.l1.delete_pattern(pattern).await.map(drop)
            }
            Invalidate::Prefix(prefix) => {
                self.epochs.bump_all();
                self.l1.clear(prefix).await.map(drop)
            }
            Invalidate::Tag {
                tag,
                keys: Some(keys),
            } => {
                for key in keys {
                    self.epochs.bump_key(key);
                }
                let keys: Vec<&str> = keys.iter().map(|k| &**k).collect();
                match self.l1.delete_many(&keys).await {
                    Ok(_) => self.l1.invalidate_tag(tag).await.map(drop),
                    Err(e) => Err(e),
                }
            }
            Invalidate::Tag { tag, keys: None } => {
                // L1 cannot know which copies L2 had tagged (a copy read from
                // L2 carries no tags): drop the tag's whole namespace.
                self.epochs.bump_all();
                match tag.split_once(':') {
                    Some((ns, _)) => self.l1.clear(&format!("{ns}:")).await.map(drop),
                    None => self.l1.clear("").await.map(drop),
                }
            }
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "L1 invalidation failed; flushing L1");
            self.flush().await;
        }
    }

    /// Empties L1.
    pub(crate) async fn flush(&self) {
        self.epochs.bump_all();
        self.link.stats.flushes.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.l1.clear("").await {
            tracing::error!(error = %err, "could not flush L1");
        }
    }
}

// ---- coherence state --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// No coherence configured.
    Off,
    /// Configured, not subscribed (yet, or any more).
    Down,
    /// Subscribed: invalidations from other processes arrive.
    Up,
}

/// State of the coherence subscription, shared by the tiers and the
/// subscriber task.
pub(crate) struct Link {
    state: AtomicU8,
    disconnected_ttl: Duration,
    pub(crate) changed: tokio::sync::Notify,
    pub(crate) stats: LinkStats,
}

#[derive(Default)]
pub(crate) struct LinkStats {
    pub(crate) subscriptions: AtomicU64,
    pub(crate) losses: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) after_errors: AtomicU64,
}

impl Link {
    pub(super) fn new(coherent: bool, disconnected_ttl: Duration) -> Link {
        let state = if coherent {
            LinkState::Down
        } else {
            LinkState::Off
        };
        Link {
            state: AtomicU8::new(state as u8),
            disconnected_ttl,
            changed: tokio::sync::Notify::new(),
            stats: LinkStats::default(),
        }
    }

    pub(crate) fn state(&self) -> LinkState {
        match self.state.load(Ordering::SeqCst) {
            0 => LinkState::Off,
            1 => LinkState::Down,
            _ => LinkState::Up,
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // set by a channel's subscriber
    pub(crate) fn set_state(&self, state: LinkState) {
        self.state.store(state as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(super) fn stats(&self) -> CoherenceStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CoherenceStats {
            subscribed: self.state() == LinkState::Up,
            subscriptions: get(&s.subscriptions),
            losses: get(&s.losses),
            flushes: get(&s.flushes),
            received: get(&s.received),
            published: get(&s.published),
            publish_errors: get(&s.publish_errors),
            published_after_errors: get(&s.after_errors),
        }
    }
}

/// Counters of cross-process coherence, from [`Tiered::coherence_stats`](super::Tiered::coherence_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoherenceStats {
    /// Whether the subscription is established now.
    pub subscribed: bool,
    /// How many times the subscription was established (1 + reconnections).
    pub subscriptions: u64,
    /// How many times an established subscription was lost (counted once
    /// L1 was flushed for it).
    pub losses: u64,
    /// How many times L1 was flushed entirely.
    pub flushes: u64,
    /// Invalidations received from other processes and applied.
    pub received: u64,
    /// Invalidations published.
    pub published: u64,
    /// Invalidations that could not be published (other processes then
    /// keep their copies for at most `l1_max_ttl`).
    pub publish_errors: u64,
    /// Invalidations published (or attempted: see `published` and
    /// `publish_errors`) for L2 operations that failed in a way that may
    /// still have applied them, such as a timeout
    /// ([`Error::may_have_applied`](crate::Error::may_have_applied)).
    pub published_after_errors: u64,
}

#[async_trait::async_trait]
impl<L1: CacheBackend> super::coherence::Receiver for Front<L1> {
    async fn apply(&self, op: &Invalidate<'_>) {
        Front::apply(self, op).await;
    }

    async fn flush(&self) {
        Front::flush(self).await;
    }

    fn invalidate_reads(&self) {
        self.epochs.bump_all();
    }

    fn link(&self) -> &Link {
        &self.link
    }
}
