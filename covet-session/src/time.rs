//! Milliseconds since the Unix epoch, as every store writes expiry times.

pub(crate) use covet_cache::time::{from_epoch_ms as from_ms, to_epoch_ms as to_ms};
