//! Milliseconds since the Unix epoch: the one conversion every store and
//! backend uses for the expiry times it writes.
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use covet_cache::time::{from_epoch_ms, to_epoch_ms};
//! let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
//! assert_eq!(to_epoch_ms(t), 1_700_000_000_123);
//! assert_eq!(from_epoch_ms(1_700_000_000_123), t);
//! assert_eq!(to_epoch_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` in whole milliseconds since the Unix epoch: 0 for earlier times,
/// `u64::MAX` for later ones than that can hold.
pub fn to_epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch (the latest time the
/// platform can hold, if it cannot hold that one).
pub fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 100))
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_epoch_ms() -> u64 {
    to_epoch_ms(SystemTime::now())
}
