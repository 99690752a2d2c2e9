//! Values stored with the versions of their tags, for backends that may
//! lose a tag's member list (Redis evicting a set under `maxmemory`, a
//! Memcached slab eviction): the version check on read makes a tag
//! invalidation hold for every value stored with the tag, listed or not.
//!
//! Each tag has a version (a random 64-bit number kept by the backend next
//! to the tag's member list). A value stored with tags records the version
//! of each tag at the time of the write; invalidating a tag gives it a new
//! version; a read compares the recorded versions with the current ones
//! and treats any difference, or a version that is gone, as a miss.
//!
//! Layout of a value stored this way (an untagged value is stored as is,
//! unless its first byte is [`MAGIC`]: it is then wrapped with no tags, so
//! the two never mix up):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | [`MAGIC`] (`0xC7`; a covet envelope starts with `0x01`) |
//! | 1 | number of tags (at most 255) |
//! | per tag: 2 | length of the tag name, big endian |
//! | per tag: n | the tag name |
//! | per tag: 8 | the version recorded, big endian |
//! | rest | the value |

#![cfg_attr(not(any(feature = "redis", feature = "memcached")), allow(dead_code))]

use bytes::{BufMut, Bytes, BytesMut};

/// First byte of a wrapped value.
pub(crate) const MAGIC: u8 = 0xC7;

/// A stored value, read back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Stored as is.
    Plain(Bytes),
    /// Stored with tag versions to check.
    Tagged {
        /// `(tag, version recorded)`.
        tags: Vec<(String, u64)>,
        /// The value.
        value: Bytes,
    },
}

/// The bytes to store for `value` with `tags` (at most 255, names at most
/// 65 535 bytes: longer ones cannot be keys anyway).
pub(crate) fn wrap(tags: &[(&str, u64)], value: &[u8]) -> Option<Bytes> {
    let count = u8::try_from(tags.len()).ok()?;
    let header: usize = tags.iter().map(|(t, _)| 10 + t.len()).sum();
    let mut out = BytesMut::with_capacity(2 + header + value.len());
    out.put_u8(MAGIC);
    out.put_u8(count);
    for (tag, version) in tags {
        out.put_u16(u16::try_from(tag.len()).ok()?);
        out.put_slice(tag.as_bytes());
        out.put_u64(*version);
    }
    out.put_slice(value);
    Some(out.freeze())
}

/// An untagged value as stored: as is, or wrapped with no tags when it
/// starts with [`MAGIC`].
#[inline]
pub(crate) fn plain(value: Bytes) -> Bytes {
    if value.first() == Some(&MAGIC) {
        wrap(&[], &value).unwrap_or(value)
    } else {
        value
    }
}

/// Reads stored bytes; `None` if they start with [`MAGIC`] but are not a
/// well-formed wrapper (corrupt: a miss).
pub(crate) fn parse(bytes: Bytes) -> Option<Stored> {
    if bytes.first() != Some(&MAGIC) {
        return Some(Stored::Plain(bytes));
    }
    let count = usize::from(*bytes.get(1)?);
    let mut at = 2;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        at += 2;
        let name = std::str::from_utf8(bytes.get(at..at + len)?)
            .ok()?
            .to_owned();
        at += len;
        let version = u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        tags.push((name, version));
    }
    let value = bytes.slice(at..);
    if tags.is_empty() {
        return Some(Stored::Plain(value));
    }
    Some(Stored::Tagged { tags, value })
}

/// A fresh random version.
pub(crate) fn new_version() -> crate::Result<u64> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw)
        .map_err(|e| crate::Error::backend("tags", "drawing a tag version", e))?;
    Ok(u64::from_ne_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let w = wrap(&[("ns:a", 7), ("ns:bé", u64::MAX)], b"value").unwrap();
        assert_eq!(w[0], MAGIC);
        assert_eq!(
            parse(w),
            Some(Stored::Tagged {
                tags: vec![("ns:a".into(), 7), ("ns:bé".into(), u64::MAX)],
                value: Bytes::from_static(b"value"),
            })
        );
        let p = parse(Bytes::from_static(b"\x01envelope")).unwrap();
        assert_eq!(p, Stored::Plain(Bytes::from_static(b"\x01envelope")));
    }

    #[test]
    fn plain_values_that_look_wrapped_are_escaped() {
        let raw = Bytes::from_static(&[MAGIC, 3, 1, 2]);
        let stored = plain(raw.clone());
        assert_ne!(stored, raw);
        assert_eq!(parse(stored), Some(Stored::Plain(raw)));
        let ordinary = Bytes::from_static(b"abc");
        assert_eq!(plain(ordinary.clone()), ordinary);
        assert_eq!(
            parse(plain(Bytes::new())),
            Some(Stored::Plain(Bytes::new()))
        );
    }

    #[test]
    fn truncated_wrappers_are_corrupt() {
        let w = wrap(&[("ns:a", 7)], b"v").unwrap();
        for cut in 1..w.len() - 1 {
            let p = parse(w.slice(..cut));
            assert!(
                p.is_none() || matches!(p, Some(Stored::Tagged { .. })),
                "cut at {cut}: {p:?}"
            );
        }
        assert_eq!(parse(w.slice(..1)), None);
        assert_eq!(parse(Bytes::from_static(&[MAGIC, 1, 0, 200])), None);
    }
}
