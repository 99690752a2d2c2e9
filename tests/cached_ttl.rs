//! `ttl`: entries expire after their TTL (short real TTLs; moka's clock
//! cannot be paused).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::{Cache, KeyTtl};

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("ttl"))
        .build()
        .unwrap()
});

static CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(ttl = "300ms", key = "short:{n}", cache = CACHE)]
async fn short_lived(n: u32) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

static LONG_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(ttl = 3600, key = "long:{n}", cache = CACHE)]
async fn long_lived(n: u32) -> u32 {
    LONG_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 3
}

#[tokio::test]
async fn entry_expires_after_its_ttl() {
    assert_eq!(short_lived(1).await, 2);
    assert_eq!(short_lived(1).await, 2);
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        1,
        "second call within the TTL is a hit"
    );
    match CACHE.ttl(&short_lived_key(1)).await.unwrap() {
        KeyTtl::Expires(d) => assert!(d <= Duration::from_millis(300), "{d:?}"),
        other => panic!("expected a TTL, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        CACHE.ttl(&short_lived_key(1)).await.unwrap(),
        KeyTtl::Missing
    );
    assert_eq!(short_lived(1).await, 2);
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        2,
        "after the TTL the body runs again"
    );
}

#[tokio::test]
async fn integer_ttl_is_seconds() {
    assert_eq!(long_lived(5).await, 15);
    match CACHE.ttl(&long_lived_key(5)).await.unwrap() {
        KeyTtl::Expires(d) => {
            assert!(
                d > Duration::from_secs(3590) && d <= Duration::from_secs(3600),
                "{d:?}"
            )
        }
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert_eq!(long_lived(5).await, 15);
    assert_eq!(LONG_CALLS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn typed_api_ttl_and_default_ttl() {
    let cache = Cache::builder()
        .namespace(covet_test::unique_namespace("ttl-api"))
        .default_ttl(Duration::from_millis(250))
        .build()
        .unwrap();
    cache.set("default", &1u8, None).await.unwrap();
    cache
        .set("explicit", &2u8, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    cache.set("zero", &3u8, Some(Duration::ZERO)).await.unwrap();
    assert_eq!(
        cache.get::<u8>("zero").await.unwrap(),
        None,
        "a zero TTL stores nothing"
    );
    assert_eq!(cache.get::<u8>("default").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get::<u8>("default").await.unwrap(), None);
    assert_eq!(cache.get::<u8>("explicit").await.unwrap(), Some(2));
}
