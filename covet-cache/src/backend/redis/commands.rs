//! Building commands and reading replies: key layout, TTLs, tokens.

use std::time::Duration;

use redis::Cmd;

use super::{NAME, scripts::TAG_ADD};
use crate::backend::KeyTtl;
use crate::error::{Error, Result};

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

pub(super) fn lease_token() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| Error::backend(NAME, "drawing a lease token from the OS", e))?;
    let mut token = String::with_capacity(32);
    for b in raw {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Ok(token)
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
    fn lease_tokens_are_random_hex() {
        let a = lease_token().unwrap();
        let b = lease_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reserved_keys_are_outside_every_namespace() {
        // A namespaced key is `ns:...` with a non-empty `ns` free of `:`.
        assert!(tag_key("ns:t").starts_with(':'));
        assert!(lease_key("ns:k").starts_with(':'));
        assert!(!Glob::new("ns:*").unwrap().matches(&tag_key("ns:t")));
    }
}
