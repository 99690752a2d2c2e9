//! Generic fns and reference arguments (`&str`, `&T`).

use std::fmt::Display;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::Cache;
use serde::{Serialize, de::DeserializeOwned};

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("gen"))
        .build()
        .unwrap()
});

static CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "pair:{a}:{b}", cache = CACHE)]
async fn pair<A, B>(a: A, b: B) -> (A, B)
where
    A: Display + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Display + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    CALLS.fetch_add(1, Ordering::SeqCst);
    (a, b)
}

#[tokio::test]
async fn generic_fn_caches_per_instantiation() {
    assert_eq!(pair(1u8, "x".to_string()).await, (1, "x".to_string()));
    assert_eq!(pair(1u8, "x".to_string()).await, (1, "x".to_string()));
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    // same key text, other types: the stored (u8, String) is not a (u16, String):
    // a miss (schema fingerprint), never a wrong value
    assert_eq!(pair(1u16, "x".to_string()).await, (1, "x".to_string()));
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
}

#[derive(Debug)]
struct Org {
    slug: String,
    region: Region,
}

#[derive(Debug)]
struct Region {
    code: &'static str,
}

static REF_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "member:{org.slug}:{org.region.code}:{name}", cache = CACHE)]
async fn member(org: &Org, name: &str) -> String {
    REF_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{name}@{}", org.slug)
}

#[tokio::test]
async fn reference_arguments_and_field_placeholders() {
    let org = Org {
        slug: "acme".into(),
        region: Region { code: "eu" },
    };
    assert_eq!(member(&org, "ann").await, "ann@acme");
    assert_eq!(member(&org, "ann").await, "ann@acme");
    assert_eq!(member(&org, "bob").await, "bob@acme");
    assert_eq!(REF_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(member_key(&org, "ann"), "member:acme:eu:ann");
}

static UNKEYED_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(cache = CACHE)]
async fn unkeyed_ref(name: &str, ids: &[u32]) -> usize {
    UNKEYED_CALLS.fetch_add(1, Ordering::SeqCst);
    name.len() + ids.len()
}

#[covet::cached(cache = CACHE)]
async fn other_unkeyed_ref(name: &str, ids: &[u32]) -> usize {
    UNKEYED_CALLS.fetch_add(100, Ordering::SeqCst);
    name.len() * ids.len()
}

#[tokio::test]
async fn default_keys_encode_arguments_and_differ_per_fn() {
    assert_eq!(unkeyed_ref("ab", &[1, 2, 3]).await, 5);
    assert_eq!(unkeyed_ref("ab", &[1, 2, 3]).await, 5);
    assert_eq!(unkeyed_ref("ab", &[1, 2]).await, 4);
    assert_eq!(other_unkeyed_ref("ab", &[1, 2, 3]).await, 6);
    assert_eq!(UNKEYED_CALLS.load(Ordering::SeqCst), 102);
    let k1 = unkeyed_ref_key("ab", &[1, 2, 3]);
    let k2 = other_unkeyed_ref_key("ab", &[1, 2, 3]);
    assert_ne!(k1, k2, "two fns never share keys");
    assert!(k1.contains("unkeyed_ref"), "{k1}");
    // "a" + [b...] must not collide with "ab" + [...]
    assert_ne!(unkeyed_ref_key("a", &[98]), unkeyed_ref_key("ab", &[]));
}
