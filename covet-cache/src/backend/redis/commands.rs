//! Building commands and reading replies: key layout, TTLs, tokens.

use std::time::Duration;

use redis::Cmd;

use super::scripts::TAG_PREPARE;
use crate::backend::KeyTtl;

/// Keys per `SCAN` page (the `COUNT` hint) and per `UNLINK` batch.
pub(super) const BATCH: usize = 500;

/// Prefix of every key the backend keeps for itself.
pub(super) const RESERVED_PREFIX: &str = ":covet:";
/// (The `=` after the brace keeps the hash tag non-empty whatever the tag.)
pub(super) const TAG_PREFIX: &str = ":covet:tag:{=";
pub(super) const TAG_VERSION_PREFIX: &str = ":covet:tagv:{=";
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

/// The set of a tag's members: `:covet:tag:{=<tag>}`. The braces keep it
/// in the hash slot of its version key on a cluster.
pub(super) fn tag_key(tag: &str) -> String {
    let mut k = String::with_capacity(TAG_PREFIX.len() + tag.len() + 1);
    k.push_str(TAG_PREFIX);
    k.push_str(tag);
    k.push('}');
    k
}

/// The version of a tag: `:covet:tagv:{=<tag>}`.
pub(super) fn tag_version_key(tag: &str) -> String {
    let mut k = String::with_capacity(TAG_VERSION_PREFIX.len() + tag.len() + 1);
    k.push_str(TAG_VERSION_PREFIX);
    k.push_str(tag);
    k.push('}');
    k
}

pub(super) fn lease_key(key: &str) -> String {
    let mut k = String::with_capacity(LEASE_PREFIX.len() + key.len());
    k.push_str(LEASE_PREFIX);
    k.push_str(key);
    k
}

pub(super) fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    // Sized once: growing the buffer costs a reallocation (and a copy of
    // the value) per write.
    let mut cmd = Cmd::with_capacity(5, 3 + key.len() + value.len() + 2 + 20);
    cmd.arg("SET").arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_ms(ttl));
    }
    cmd
}

/// Adds `key` to `tag`'s set and answers the tag's version (created from
/// `fresh` when missing).
pub(super) fn tag_prepare_cmd(tag: &str, key: &str, ttl: Option<Duration>, fresh: u64) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(TAG_PREPARE)
        .arg(2)
        .arg(tag_key(tag))
        .arg(tag_version_key(tag))
        .arg(key);
    match ttl {
        Some(ttl) => cmd.arg(ttl_ms(ttl)),
        None => cmd.arg(""),
    };
    cmd.arg(fresh);
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
        assert!(tag_version_key("ns:t").starts_with(':'));
        // same hash slot for a tag's set and version, whatever the tag holds
        for tag in ["ns:t", "ns:a{b}", "ns:}x", "ns:{", "}ns:t", "{}"] {
            assert_eq!(
                redis::cluster_routing::Slot::for_key(tag_key(tag)),
                redis::cluster_routing::Slot::for_key(tag_version_key(tag)),
                "{tag}"
            );
        }
        assert!(lease_key("ns:k").starts_with(':'));
        assert!(!Glob::new("ns:*").unwrap().matches(&tag_key("ns:t")));
    }
}
