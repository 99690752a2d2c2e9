//! Value codecs and the versioned envelope every stored value is wrapped in.
//!
//! Layout of a stored value (all backends):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | envelope format: `1`, or `2` for a value with a freshness stamp |
//! | 1 | codec id: `1` postcard, `2` bincode 2, `3` JSON |
//! | 8 | schema fingerprint of the value type, little endian |
//! | 16 | format `2` only: the stamp (see below) |
//! | rest | the payload in the codec's format |
//!
//! A stamp is written by `#[cached]` fns with `stale_while_revalidate`,
//! `stale_if_error` or `refresh_ahead`: the time the value stops being fresh
//! (milliseconds since the Unix epoch, `u64`), then the stale-while-revalidate
//! and stale-if-error windows that follow it (milliseconds, `u32` each), all
//! little endian. The entry itself lives in the backend until the end of the
//! longer window, so every process that reads it (through Redis, Memcached,
//! SQL) knows when it went stale and for how long it may still be served.
//! A reader that does not serve stale values ([`Cache::get`](crate::Cache::get),
//! a fn without those options) treats an entry past its freshness as absent.
//!
//! The fingerprint is a 64-bit FNV-1a hash of the value type's name, its
//! size and alignment, and the cache's schema version
//! ([`CacheBuilder::schema_version`](crate::CacheBuilder::schema_version)).
//! A reader whose type does not match, or bytes that do not decode, are a
//! cache miss (counted in [`Stats::decode_errors`](crate::Stats)), never a
//! wrong value. Bump the schema version to retire entries of a type whose
//! serialized shape changed without its name or size changing.
//!
//! # Corrupt bytes
//!
//! Stored bytes come from outside the process (a shared Redis, a
//! Memcached anyone on the network can write to), so decoding never trusts
//! them. Every decoder is bounded by the size of its input:
//!
//! * postcard reads a length only after checking that many bytes follow,
//!   and preallocates at most serde's cautious 1 MiB for a sequence;
//! * bincode runs with an allocation limit derived from the payload length
//!   (64 times the payload, at least 64 KiB): a length prefix claiming more
//!   is an error before any allocation;
//! * JSON allocates as it parses and stops nesting at depth 128;
//! * postcard and bincode decode on a stack that grows on the heap as a
//!   deeply nested (recursive) value needs it, so corrupt nesting cannot
//!   overflow the thread's stack.
//!
//! Whatever the bytes, decoding returns a value or an error (a counted
//! miss), never a panic or an abort.

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::CodecError;

const FORMAT_V1: u8 = 1;
const FORMAT_STAMPED: u8 = 2;
const HEADER_LEN: usize = 10;
const STAMP_LEN: usize = 16;

/// When a stamped value stops being fresh, and how long it may be served
/// stale after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Milliseconds since the Unix epoch; `u64::MAX`: never.
    pub(crate) fresh_until: u64,
    /// Stale-while-revalidate window, milliseconds.
    pub(crate) swr: u32,
    /// Stale-if-error window, milliseconds.
    pub(crate) sie: u32,
}

impl Stamp {
    /// The stamp of a stored value, if it has one (and a well-formed header).
    #[inline]
    pub(crate) fn of(bytes: &[u8]) -> Option<Stamp> {
        if bytes.first() != Some(&FORMAT_STAMPED) {
            return None;
        }
        let stamp = bytes.get(HEADER_LEN..HEADER_LEN + STAMP_LEN)?;
        let (fresh, windows) = stamp.split_at(8);
        let (swr, sie) = windows.split_at(4);
        Some(Stamp {
            fresh_until: u64::from_le_bytes(fresh.try_into().ok()?),
            swr: u32::from_le_bytes(swr.try_into().ok()?),
            sie: u32::from_le_bytes(sie.try_into().ok()?),
        })
    }

    /// Whether a stored value (stamped or not) is past its freshness.
    #[inline]
    pub(crate) fn expired(bytes: &[u8]) -> bool {
        match Stamp::of(bytes) {
            Some(stamp) => crate::time::now_epoch_ms() >= stamp.fresh_until,
            None => false,
        }
    }
}

/// The serialization format of cached values.
///
/// postcard is the default: compact, fast and with a stable, documented wire
/// format. `bincode` (2.0.x) and `json` are opt-in cargo features. Readers
/// decode with the codec recorded in each value's envelope, so changing the
/// codec of a running system turns old entries into misses only where this
/// build lacks their codec.
///
/// ```
/// use covet_cache::{Cache, Codec};
/// let cache = Cache::builder().codec(Codec::Postcard).build().unwrap();
/// assert_eq!(cache.codec(), Codec::Postcard);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// postcard 1.x (default).
    #[default]
    Postcard,
    /// bincode 2.0.x with its standard configuration (feature `bincode`).
    #[cfg(feature = "bincode")]
    Bincode,
    /// JSON through serde_json (feature `json`).
    #[cfg(feature = "json")]
    Json,
}

impl Codec {
    /// The id written into the envelope.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Postcard => 1,
            #[cfg(feature = "bincode")]
            Codec::Bincode => 2,
            #[cfg(feature = "json")]
            Codec::Json => 3,
        }
    }

    /// The codec's name: `postcard`, `bincode` or `json`.
    ///
    /// ```
    /// assert_eq!(covet_cache::Codec::Postcard.name(), "postcard");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            #[cfg(feature = "bincode")]
            Codec::Bincode => "bincode",
            #[cfg(feature = "json")]
            Codec::Json => "json",
        }
    }

    fn from_id(id: u8) -> Result<Codec, CodecError> {
        match id {
            1 => Ok(Codec::Postcard),
            #[cfg(feature = "bincode")]
            2 => Ok(Codec::Bincode),
            #[cfg(feature = "json")]
            3 => Ok(Codec::Json),
            other => Err(CodecError::UnknownCodec(other)),
        }
    }

    /// Encodes `value` into an envelope with the given fingerprint.
    #[cfg(test)]
    pub(crate) fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        fingerprint: u64,
    ) -> Result<Bytes, CodecError> {
        self.encode_stamped(value, fingerprint, None)
    }

    /// Encodes `value`, with a freshness stamp when one is given.
    pub(crate) fn encode_stamped<T: Serialize + ?Sized>(
        self,
        value: &T,
        fingerprint: u64,
        stamp: Option<Stamp>,
    ) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(64);
        out.push(if stamp.is_some() {
            FORMAT_STAMPED
        } else {
            FORMAT_V1
        });
        out.push(self.id());
        out.extend_from_slice(&fingerprint.to_le_bytes());
        if let Some(stamp) = stamp {
            out.extend_from_slice(&stamp.fresh_until.to_le_bytes());
            out.extend_from_slice(&stamp.swr.to_le_bytes());
            out.extend_from_slice(&stamp.sie.to_le_bytes());
        }
        match self {
            Codec::Postcard => {
                out = postcard::to_extend(value, out)?;
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                bincode::serde::encode_into_std_write(
                    value,
                    &mut out,
                    bincode::config::standard(),
                )?;
            }
            #[cfg(feature = "json")]
            Codec::Json => {
                serde_json::to_writer(&mut out, value)?;
            }
        }
        Ok(Bytes::from(out))
    }

    /// Decodes an envelope, checking its format and fingerprint.
    pub(crate) fn decode<T: DeserializeOwned>(
        bytes: &[u8],
        fingerprint: u64,
    ) -> Result<T, CodecError> {
        if bytes.len() < HEADER_LEN {
            return Err(CodecError::Envelope("shorter than the header"));
        }
        let payload_at = match bytes[0] {
            FORMAT_V1 => HEADER_LEN,
            FORMAT_STAMPED if bytes.len() >= HEADER_LEN + STAMP_LEN => HEADER_LEN + STAMP_LEN,
            FORMAT_STAMPED => return Err(CodecError::Envelope("shorter than the header")),
            _ => return Err(CodecError::Envelope("unknown envelope format")),
        };
        let codec = Codec::from_id(bytes[1])?;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        if u64::from_le_bytes(fp) != fingerprint {
            return Err(CodecError::SchemaMismatch);
        }
        let payload = &bytes[payload_at..];
        match codec {
            Codec::Postcard => {
                let mut de = postcard::Deserializer::from_bytes(payload);
                let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
                if de.finalize()?.is_empty() {
                    Ok(value)
                } else {
                    Err(CodecError::TrailingBytes)
                }
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => bincode_decode(payload),
            #[cfg(feature = "json")]
            Codec::Json => Ok(serde_json::from_slice(payload)?),
        }
    }
}

/// A stored value's envelope read from raw bytes: the codec that wrote
/// it, the schema fingerprint of its type, the freshness stamp of values
/// kept for stale-while-revalidate, and the serialized payload. For tools
/// that read a backend's bytes directly (the `covet` command line);
/// [`Cache`](crate::Cache) itself reads through typed gets.
///
/// ```
/// use covet_cache::{Cache, Codec, Envelope};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::memory();
/// cache.set("n", &7u32, None).await.unwrap();
/// let bytes = cache.backend().get("covet:n").await.unwrap().unwrap();
/// let envelope = Envelope::parse(&bytes).unwrap();
/// assert_eq!(envelope.codec, Some(Codec::Postcard));
/// assert_eq!(envelope.payload, [7]);
/// assert!(Envelope::parse(b"not one").is_err());
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope<'a> {
    /// The codec id written into the envelope (1 postcard, 2 bincode, 3
    /// JSON).
    pub codec_id: u8,
    /// The codec, when this build has it.
    pub codec: Option<Codec>,
    /// The schema fingerprint of the type that wrote the value (and the
    /// cache's schema version).
    pub fingerprint: u64,
    /// Until when a value stored with a stale window is fresh,
    /// milliseconds since the Unix epoch (`None` for other values).
    pub fresh_until_ms: Option<u64>,
    /// The serialized value.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of `bytes`; an error when they are too short or
    /// of an unknown envelope format. Nothing is decoded.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, CodecError> {
        if bytes.len() < HEADER_LEN {
            return Err(CodecError::Envelope("shorter than the header"));
        }
        let (payload_at, fresh_until_ms) = match bytes[0] {
            FORMAT_V1 => (HEADER_LEN, None),
            FORMAT_STAMPED => match Stamp::of(bytes) {
                Some(stamp) => (HEADER_LEN + STAMP_LEN, Some(stamp.fresh_until)),
                None => return Err(CodecError::Envelope("shorter than the header")),
            },
            _ => return Err(CodecError::Envelope("unknown envelope format")),
        };
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        Ok(Envelope {
            codec_id: bytes[1],
            codec: Codec::from_id(bytes[1]).ok(),
            fingerprint: u64::from_le_bytes(fp),
            fresh_until_ms,
            payload: &bytes[payload_at..],
        })
    }
}

/// bincode over the rest of a slice, counting what it consumed.
#[cfg(feature = "bincode")]
struct Rest<'a>(&'a [u8]);

#[cfg(feature = "bincode")]
impl bincode::de::read::Reader for Rest<'_> {
    #[inline]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        let Some((head, tail)) = self.0.split_at_checked(bytes.len()) else {
            return Err(bincode::error::DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        };
        bytes.copy_from_slice(head);
        self.0 = tail;
        Ok(())
    }
}

/// Decodes bincode with an allocation limit of 64 times the payload (at
/// least 64 KiB), in five steps so that only five copies of the decoder are
/// compiled per type.
#[cfg(feature = "bincode")]
fn bincode_decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    fn run<T: DeserializeOwned, const LIMIT: usize>(payload: &[u8]) -> Result<T, CodecError> {
        let config = bincode::config::standard().with_limit::<LIMIT>();
        let mut rest = Rest(payload);
        let mut decoder = bincode::serde::OwnedSerdeDecoder::from_reader(&mut rest, config);
        let value = T::deserialize(serde_stacker::Deserializer::new(decoder.as_deserializer()))?;
        if rest.0.is_empty() {
            Ok(value)
        } else {
            Err(CodecError::TrailingBytes)
        }
    }
    /// `2^shift` bytes, or all of them on a narrow target.
    const fn cap(shift: u32) -> usize {
        if shift >= usize::BITS {
            usize::MAX
        } else {
            1 << shift
        }
    }
    match payload.len() {
        0..=1_024 => run::<T, { cap(16) }>(payload),
        1_025..=65_536 => run::<T, { cap(22) }>(payload),
        65_537..=4_194_304 => run::<T, { cap(28) }>(payload),
        4_194_305..=268_435_456 => run::<T, { cap(34) }>(payload),
        _ => run::<T, { cap(40) }>(payload),
    }
}

/// The schema fingerprint of `T` under a schema version.
///
/// Computed from `type_name::<T>()`, `size_of::<T>()`, `align_of::<T>()` and
/// `version`. Stable for one build of a program; a compiler upgrade may
/// change type names, which turns old remote entries into misses.
pub(crate) fn fingerprint<T: 'static>(version: u32) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(std::any::type_name::<T>().as_bytes());
    feed(&(std::mem::size_of::<T>() as u64).to_le_bytes());
    feed(&(std::mem::align_of::<T>() as u64).to_le_bytes());
    feed(&version.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
    }

    #[test]
    fn round_trip_postcard() {
        let u = User {
            id: 7,
            name: "Alice".into(),
        };
        let fp = fingerprint::<User>(0);
        let bytes = Codec::Postcard.encode(&u, fp).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 1);
        assert_eq!(Codec::decode::<User>(&bytes, fp).unwrap(), u);
    }

    #[test]
    fn stamped_round_trip_and_truncation() {
        let u = User {
            id: 7,
            name: "Alice".into(),
        };
        let fp = fingerprint::<User>(0);
        let stamp = Stamp {
            fresh_until: 1_700_000_000_123,
            swr: 30_000,
            sie: 300_000,
        };
        let bytes = Codec::Postcard.encode_stamped(&u, fp, Some(stamp)).unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(Stamp::of(&bytes), Some(stamp));
        assert_eq!(Codec::decode::<User>(&bytes, fp).unwrap(), u);
        assert!(Stamp::expired(&bytes), "1_700_000_000_123 is in the past");
        // A stamp cut short is an envelope error, never a panic.
        for len in 0..HEADER_LEN + STAMP_LEN {
            assert!(Codec::decode::<User>(&bytes[..len], fp).is_err(), "{len}");
            assert_eq!(Stamp::of(&bytes[..len]), None, "{len}");
        }
        let plain = Codec::Postcard.encode(&u, fp).unwrap();
        assert_eq!(Stamp::of(&plain), None);
        assert!(!Stamp::expired(&plain));
    }

    #[test]
    fn mismatch_and_corruption_are_errors() {
        let fp = fingerprint::<User>(0);
        let bytes = Codec::Postcard
            .encode(
                &User {
                    id: 1,
                    name: "x".into(),
                },
                fp,
            )
            .unwrap();
        assert!(matches!(
            Codec::decode::<User>(&bytes, fingerprint::<String>(0)),
            Err(CodecError::SchemaMismatch)
        ));
        assert!(matches!(
            Codec::decode::<User>(&bytes, fingerprint::<User>(1)),
            Err(CodecError::SchemaMismatch)
        ));
        assert!(Codec::decode::<User>(&bytes[..4], fp).is_err());
        let mut truncated = bytes.to_vec();
        truncated.truncate(bytes.len() - 1);
        assert!(Codec::decode::<User>(&truncated, fp).is_err());
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(matches!(
            Codec::decode::<User>(&extra, fp),
            Err(CodecError::TrailingBytes)
        ));
        let mut bad_codec = bytes.to_vec();
        bad_codec[1] = 200;
        assert!(matches!(
            Codec::decode::<User>(&bad_codec, fp),
            Err(CodecError::UnknownCodec(200))
        ));
        assert!(Codec::decode::<User>(b"garbage-garbage-garbage", fp).is_err());
    }

    #[cfg(feature = "json")]
    #[test]
    fn round_trip_json() {
        let u = User {
            id: 9,
            name: "J".into(),
        };
        let fp = fingerprint::<User>(0);
        let bytes = Codec::Json.encode(&u, fp).unwrap();
        assert_eq!(&bytes[10..], br#"{"id":9,"name":"J"}"#);
        assert_eq!(Codec::decode::<User>(&bytes, fp).unwrap(), u);
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn round_trip_bincode() {
        let u = User {
            id: 3,
            name: "B".into(),
        };
        let fp = fingerprint::<User>(0);
        let bytes = Codec::Bincode.encode(&u, fp).unwrap();
        assert_eq!(Codec::decode::<User>(&bytes, fp).unwrap(), u);
    }
}
