//! Corrupted or foreign entries are misses (counted), never panics or wrong values.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::{Cache, CacheBackend};

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("corrupt"))
        .build()
        .unwrap()
});

static CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    id: u64,
    balance: i64,
}

#[covet::cached(key = "account:{id}", cache = CACHE)]
async fn account(id: u64) -> Account {
    CALLS.fetch_add(1, Ordering::SeqCst);
    Account { id, balance: 100 }
}

static CACHE_B: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("foreign"))
        .build()
        .unwrap()
});

static CALLS_B: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "account:{id}", cache = CACHE_B)]
async fn account_b(id: u64) -> Account {
    CALLS_B.fetch_add(1, Ordering::SeqCst);
    Account { id, balance: 100 }
}

fn raw_key(cache: &Cache, key: &str) -> String {
    format!("{}:{key}", cache.namespace())
}

#[tokio::test]
async fn garbage_bytes_are_a_counted_miss_and_get_replaced() {
    let backend = CACHE.backend();
    let key = raw_key(&CACHE, &account_key(1));
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff",
        b"not an envelope at all",
        b"\x09\x01aaaaaaaaaaaaaaa",
    ] {
        backend
            .set(&key, garbage.to_vec().into(), None)
            .await
            .unwrap();
        let before = CACHE.stats();
        assert_eq!(CACHE.get::<Account>(&account_key(1)).await.unwrap(), None);
        let after = CACHE.stats();
        assert_eq!(after.decode_errors, before.decode_errors + 1, "{garbage:?}");
        assert_eq!(after.misses, before.misses + 1);
    }
    let calls = CALLS.load(Ordering::SeqCst);
    assert_eq!(
        account(1).await,
        Account {
            id: 1,
            balance: 100
        }
    );
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls + 1,
        "the body ran instead of trusting garbage"
    );
    assert_eq!(account(1).await.balance, 100);
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls + 1,
        "the fresh value replaced the garbage"
    );
}

#[tokio::test]
async fn a_value_of_another_type_is_a_miss() {
    CACHE_B
        .set(
            &account_b_key(2),
            &"a string, not an Account".to_string(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        CACHE_B.get::<Account>(&account_b_key(2)).await.unwrap(),
        None
    );
    // u64 and i64 share a wire format; the fingerprint still tells them apart
    CACHE_B.set("num", &7u64, None).await.unwrap();
    assert_eq!(CACHE_B.get::<i64>("num").await.unwrap(), None);
    assert_eq!(CACHE_B.get::<u64>("num").await.unwrap(), Some(7));
    assert_eq!(
        CACHE_B.get::<i64>("num").await.unwrap(),
        None,
        "also once the u64 was decoded"
    );
    assert_eq!(account_b(2).await.id, 2);
    assert_eq!(CALLS_B.load(Ordering::SeqCst), 1);
    // the Account read, two i64 reads, and the lookup inside account_b(2)
    assert_eq!(CACHE_B.stats().decode_errors, 4);
}

#[tokio::test]
async fn schema_version_retires_old_entries() {
    let backend = std::sync::Arc::new(covet::cache::MemoryBackend::new());
    let ns = covet_test::unique_namespace("schema");
    let v1 = Cache::builder()
        .backend(backend.clone())
        .namespace(ns.clone())
        .build()
        .unwrap();
    let v2 = Cache::builder()
        .backend(backend)
        .namespace(ns)
        .schema_version(2)
        .build()
        .unwrap();
    v1.set("k", &Account { id: 1, balance: 1 }, None)
        .await
        .unwrap();
    assert_eq!(v2.get::<Account>("k").await.unwrap(), None);
    assert_eq!(v2.stats().decode_errors, 1);
    assert!(v1.get::<Account>("k").await.unwrap().is_some());
}

#[tokio::test]
async fn truncated_valid_envelope_is_a_miss() {
    let cache = Cache::builder()
        .namespace(covet_test::unique_namespace("trunc"))
        .build()
        .unwrap();
    cache
        .set("acct", &Account { id: 3, balance: -5 }, None)
        .await
        .unwrap();
    let key = raw_key(&cache, "acct");
    let bytes = cache.backend().get(&key).await.unwrap().unwrap();
    for cut in [bytes.len() - 1, 11, 10] {
        cache
            .backend()
            .set(&key, bytes.slice(..cut), None)
            .await
            .unwrap();
        assert_eq!(
            cache.get::<Account>("acct").await.unwrap(),
            None,
            "cut at {cut}"
        );
    }
}
