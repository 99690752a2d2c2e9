//! Building commands and reading replies: key layout, TTLs, tokens.

use std::time::Duration;

use redis::Cmd;

use super::scripts::TAG_ADD;
use crate::backend::KeyTtl;

/// Keys per `SCAN` page (the `COUNT` hint) and per `UNLINK` batch.
pub(super) const BATCH: usize = 500;

/// Prefix of every key the backend keeps for itself.
pub(super) const RESERVED_PREFIX: &str = ":covet:";
pub(super) const TAG_PREFIX: &str = ":covet:tag:";
const LEASE_PREFIX: &str = ":covet:lease:";

/// Longest TTL sent to Redis (about 35 000 years), so `now + ttl` never
/// overflows on the server.
pub(super) const MAX_TTL_MS: u64 = 1 << 50;

/// A TTL in whole milliseconds, rounded up, at least 1.
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(MAX_TTL_MS).clamp(1, MAX_TTL_MS)
}

/// A `PTTL` reply: -2 missing, -1 no expiry, else milliseconds left.
pub(super) fn pttl(ms: i64) -> KeyTtl {
    match ms {
        -1 => KeyTtl::Persistent,
        ms if ms > 0 => KeyTtl::Expires(Duration::from_millis(ms.unsigned_abs())),
        _ => KeyTtl::Missing,
    }
}

pub(super) fn tag_key(tag: &str) -> String {
    let mut k = String::with_capacity(TAG_PREFIX.len() + tag.len());
    k.push_str(TAG_PREFIX);
    k.push_str(tag);
    k
}

pub(super) fn lease_key(key: &str) -> String {
    let mut k = String::with_capacity(LEASE_PREFIX.len() + key.len());
    k.push_str(LEASE_PREFIX);
    k.push_str(key);
    k
}

pub(super) fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_ms(ttl));
    }
    cmd
}

pub(super) fn tag_add_cmd(tag: &str, key: &str, ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(TAG_ADD).arg(1).arg(tag_key(tag)).arg(key);
    match ttl {
        Some(ttl) => cmd.arg(ttl_ms(ttl)),
        None => cmd.arg(""),
    };
    cmd
}

pub(super) fn unlink_cmd<K: AsRef<str>>(keys: &[K]) -> Cmd {
    let mut cmd = redis::cmd("UNLINK");
    for k in keys {
        cmd.arg(k.as_ref());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Glob;

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1001)), 2);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn reserved_keys_are_outside_every_namespace() {
        // A namespaced key is `ns:...` with a non-empty `ns` free of `:`.
        assert!(tag_key("ns:t").starts_with(':'));
        assert!(lease_key("ns:k").starts_with(':'));
        assert!(!Glob::new("ns:*").unwrap().matches(&tag_key("ns:t")));
    }
}
