//! The interface between a [`Tiered`](super::Tiered) cache and the channel
//! that carries its invalidations to the other processes sharing its L2.
//!
//! The tiers know only this interface: [`Channel`] (publish an
//! invalidation, run a subscriber that applies the others' to L1) and
//! [`Receiver`] (what a subscriber may do to L1). A channel is chosen with
//! [`TieredBuilder::coherence`](super::TieredBuilder::coherence) as a
//! [`Coherence`] (today made from a [`RedisCoherence`](crate::RedisCoherence),
//! feature `redis`), or found by [`auto`] for an L2 that offers one.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::front::{Invalidate, Link};
use crate::error::BoxError;

/// What a subscriber may do to the L1 of the tiers it serves, whatever the
/// L1 type.
#[async_trait]
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // no channel is compiled in
pub(crate) trait Receiver: Send + Sync + 'static {
    /// Drops what `op` names from L1.
    async fn apply(&self, op: &Invalidate<'_>);
    /// Empties L1.
    async fn flush(&self);
    /// Makes reads in flight drop the L1 copies they are about to write
    /// (the link state is about to change).
    fn invalidate_reads(&self);
    /// The link state and counters.
    fn link(&self) -> &Link;
}

/// A running coherence channel of one `Tiered`.
#[async_trait]
pub(crate) trait Channel: Send + Sync + fmt::Debug + 'static {
    /// Starts the subscriber (applying other processes' invalidations to
    /// `front`) on the current tokio runtime, unless one runs. Returns at
    /// once.
    fn ensure_started(&self, front: &std::sync::Arc<dyn Receiver>);
    /// Publishes `op` within the channel's own time bound; a failure is
    /// logged and counted in `link`, never returned.
    async fn publish(&self, link: &Link, op: &Invalidate<'_>);
    /// How long [`connect`](super::TieredBuilder::connect) waits for the
    /// subscription.
    fn timeout(&self) -> Duration;
    /// Where it connects (credentials masked), for errors.
    fn describe(&self) -> String;
    /// The last connection error, for errors.
    fn last_error(&self) -> Option<BoxError>;
}

/// A cross-process coherence channel for
/// [`TieredBuilder::coherence`](super::TieredBuilder::coherence), made from
/// a channel configuration such as
/// [`RedisCoherence`](crate::RedisCoherence) (feature `redis`); the builder
/// converts it.
pub struct Coherence {
    pub(crate) channel: Box<dyn Channel>,
}

impl fmt::Debug for Coherence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Coherence").field(&self.channel).finish()
    }
}

/// The channel an L2 offers by itself: pub/sub on the Redis a
/// `RedisBackend` (or an `Arc` of one) is connected to. `None` for other
/// backends, and without the `redis` feature.
pub(crate) fn auto(l2: &dyn Any) -> Option<Box<dyn Channel>> {
    #[cfg(feature = "redis")]
    {
        super::redis::auto(l2).map(|c| Coherence::from(c).channel)
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = l2;
        None
    }
}
