//! Codecs: postcard by default, JSON and bincode 2 behind features; readers
//! follow the codec recorded in each envelope.

use std::sync::Arc;

use covet::cache::{Cache, CacheBackend, Codec, MemoryBackend};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
    lines: Vec<(String, u32)>,
    note: Option<String>,
}

fn order() -> Order {
    Order {
        id: 9,
        lines: vec![("apple".into(), 3), ("pear".into(), 1)],
        note: None,
    }
}

async fn round_trip(codec: Codec, codec_id: u8) {
    let backend = Arc::new(MemoryBackend::new());
    let ns = covet_test::unique_namespace("codec");
    let writer = Cache::builder()
        .backend(backend.clone())
        .namespace(ns.clone())
        .codec(codec)
        .build()
        .unwrap();
    writer.set("o", &order(), None).await.unwrap();
    let raw = backend.get(&format!("{ns}:o")).await.unwrap().unwrap();
    assert_eq!(raw[0], 1, "envelope format");
    assert_eq!(raw[1], codec_id, "codec id");
    // a reader configured with the default codec still decodes it
    let reader = Cache::builder()
        .backend(backend)
        .namespace(ns)
        .build()
        .unwrap();
    assert_eq!(reader.get::<Order>("o").await.unwrap(), Some(order()));
}

#[tokio::test]
async fn postcard_is_the_default() {
    assert_eq!(Cache::memory().codec(), Codec::Postcard);
    round_trip(Codec::Postcard, 1).await;
}

#[cfg(feature = "bincode")]
#[tokio::test]
async fn bincode_round_trip() {
    round_trip(Codec::Bincode, 2).await;
}

#[cfg(feature = "json")]
#[tokio::test]
async fn json_round_trip() {
    round_trip(Codec::Json, 3).await;
}
