//! Stored bytes come from outside the process: every decoder (postcard,
//! bincode, JSON, and the envelope around them) must turn any bytes into a
//! value or a counted miss, never a panic, an abort or an allocation the
//! input does not justify. Random and mutated payloads for each codec and a
//! few shapes of value, plus the cases that used to abort.

use std::collections::HashMap;

use covet::cache::{Cache, CacheBackend, CacheValue, Codec};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Named(String),
    Pair { a: u32, b: Vec<i64> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: HashMap<String, u32>,
    nick: Option<String>,
    kind: Kind,
    avatar: Vec<u8>,
}

/// A recursive type: corrupt bytes can ask for any depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    label: String,
    children: Vec<Tree>,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Ada".into(),
        tags: vec!["admin".into(), "ops".into()],
        scores: HashMap::from([("chess".into(), 1800), ("go".into(), 3)]),
        nick: Some("countess".into()),
        kind: Kind::Pair {
            a: 7,
            b: vec![-1, 2, 300_000],
        },
        avatar: vec![0x89, b'P', b'N', b'G'],
    }
}

fn tree() -> Tree {
    Tree {
        label: "root".into(),
        children: vec![
            Tree {
                label: "a".into(),
                children: vec![],
            },
            Tree {
                label: "b".into(),
                children: vec![Tree {
                    label: "c".into(),
                    children: vec![],
                }],
            },
        ],
    }
}

fn codecs() -> Vec<Codec> {
    let mut out = vec![Codec::Postcard];
    #[cfg(feature = "bincode")]
    out.push(Codec::Bincode);
    #[cfg(feature = "json")]
    out.push(Codec::Json);
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cache(codec: Codec) -> Cache {
    Cache::builder()
        .codec(codec)
        .namespace(covet_test::unique_namespace("decoders"))
        .build()
        .unwrap()
}

/// The stored bytes of `value` (envelope included) under `codec`.
async fn stored<T: Serialize + Send + Sync + 'static>(cache: &Cache, value: &T) -> Vec<u8> {
    cache.set("sample", value, None).await.unwrap();
    let key = format!("{}:sample", cache.namespace());
    cache.backend().get(&key).await.unwrap().unwrap().to_vec()
}

/// Stores `bytes` raw and reads them back as `T`: never an error (a
/// corrupt value is a miss), never a panic.
async fn read_raw<T>(cache: &Cache, bytes: Vec<u8>) -> Option<T>
where
    T: CacheValue,
{
    let key = format!("{}:raw", cache.namespace());
    cache.backend().set(&key, bytes.into(), None).await.unwrap();
    cache
        .get::<T>("raw")
        .await
        .expect("a corrupt value is a miss, not an error")
}

/// Random payloads behind a valid header, and mutations of a valid
/// encoding, for one type under every codec.
fn fuzz<T>(sample: T, random: &[Vec<u8>], mutations: &[(usize, u8, usize)])
where
    T: CacheValue,
{
    let rt = runtime();
    rt.block_on(async {
        for codec in codecs() {
            let cache = cache(codec);
            let valid = stored(&cache, &sample).await;
            let header = valid[..10].to_vec();
            for payload in random {
                let mut bytes = header.clone();
                bytes.extend_from_slice(payload);
                let _ = read_raw::<T>(&cache, bytes).await;
            }
            for &(at, byte, cut) in mutations {
                let mut bytes = valid.clone();
                let i = 10 + at % (bytes.len() - 10).max(1);
                if i < bytes.len() {
                    bytes[i] = byte;
                }
                let mut flipped = bytes.clone();
                let _ = read_raw::<T>(&cache, bytes).await;
                // also truncated, and with a run of 0xff after the change
                flipped.truncate(10 + cut % (valid.len() - 9));
                let _ = read_raw::<T>(&cache, flipped.clone()).await;
                flipped.extend_from_slice(&[0xff; 12]);
                let _ = read_raw::<T>(&cache, flipped).await;
            }
            // A plain round trip still works after all that.
            cache.set("sample", &sample, None).await.unwrap();
            assert!(cache.get::<T>("sample").await.unwrap().is_some());
        }
    });
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 1..16)
}

fn mutations() -> impl Strategy<Value = Vec<(usize, u8, usize)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn strings(random in payloads(), mutated in mutations()) {
        fuzz("hello, world".to_string(), &random, &mutated);
    }

    #[test]
    fn integer_lists(random in payloads(), mutated in mutations()) {
        fuzz(vec![1u64, 300, u64::MAX], &random, &mutated);
    }

    #[test]
    fn structs_maps_and_enums(random in payloads(), mutated in mutations()) {
        fuzz(profile(), &random, &mutated);
    }

    #[test]
    fn recursive_values(random in payloads(), mutated in mutations()) {
        fuzz(tree(), &random, &mutated);
    }
}

/// The case that aborted the process: a bincode length prefix (`253` then
/// eight bytes) claiming exabytes, in a 19-byte value.
#[cfg(feature = "bincode")]
#[tokio::test]
async fn a_19_byte_bincode_value_claiming_exabytes_is_a_miss() {
    let cache = cache(Codec::Bincode);
    let mut bytes = stored(&cache, &"hello".to_string()).await;
    bytes.truncate(10);
    bytes.push(253);
    bytes.extend_from_slice(&0x0700_0000_0000_0000u64.to_le_bytes());
    assert_eq!(bytes.len(), 19);
    let before = cache.stats().decode_errors;
    assert_eq!(read_raw::<String>(&cache, bytes).await, None);
    assert_eq!(cache.stats().decode_errors, before + 1);
}

/// The envelope names the codec, so a cache using postcard decodes a
/// bincode value too: the bound must hold whatever the cache's own codec.
#[cfg(feature = "bincode")]
#[tokio::test]
async fn the_bound_holds_whatever_codec_the_cache_uses() {
    let bincode = cache(Codec::Bincode);
    let mut bytes = stored(&bincode, &"x".to_string()).await;
    bytes.truncate(10);
    bytes.extend_from_slice(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let postcard = Cache::builder()
        .codec(Codec::Postcard)
        .namespace(bincode.namespace())
        .backend(bincode.backend().clone())
        .build()
        .unwrap();
    assert_eq!(read_raw::<String>(&postcard, bytes).await, None);
}

/// One byte changed in a stored value, at every position, under every
/// codec: a value or a miss.
#[tokio::test]
async fn every_single_byte_change_is_a_value_or_a_miss() {
    for codec in codecs() {
        let cache = cache(codec);
        let valid = stored(&cache, &profile()).await;
        for i in 0..valid.len() {
            for byte in [0x00, 0x01, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xfe, 0xff] {
                let mut bytes = valid.clone();
                bytes[i] = byte;
                let _ = read_raw::<Profile>(&cache, bytes).await;
            }
        }
    }
}

/// Corrupt nesting of a recursive type: deep enough to overflow a thread
/// stack if decoding recursed on it; the payload ends early, so it is a
/// miss.
#[tokio::test]
async fn deep_corrupt_nesting_is_a_miss_not_a_stack_overflow() {
    let depth = 40_000;
    // postcard: an empty label, one child, again and again
    let cache = cache(Codec::Postcard);
    let mut bytes = stored(&cache, &tree()).await;
    bytes.truncate(10);
    for _ in 0..depth {
        bytes.extend_from_slice(&[0, 1]);
    }
    assert_eq!(read_raw::<Tree>(&cache, bytes).await, None);
    #[cfg(feature = "bincode")]
    {
        let cache = self::cache(Codec::Bincode);
        let mut bytes = stored(&cache, &tree()).await;
        bytes.truncate(10);
        for _ in 0..depth {
            bytes.extend_from_slice(&[0, 1]);
        }
        assert_eq!(read_raw::<Tree>(&cache, bytes).await, None);
    }
    #[cfg(feature = "json")]
    {
        let cache = self::cache(Codec::Json);
        let mut bytes = stored(&cache, &tree()).await;
        bytes.truncate(10);
        for _ in 0..depth {
            bytes.extend_from_slice(br#"{"label":"","children":["#);
        }
        assert_eq!(read_raw::<Tree>(&cache, bytes).await, None);
    }
}
