//! The conformance suite every [`CacheBackend`] passes, written once.
//!
//! Each case is an async fn taking the backend under test; every case works
//! in namespaces of its own (from [`unique_namespace`]), so cases run in
//! parallel against one shared server, and what a passing case wrote is
//! removed after it ([`run_case`]).
//! [`backend_conformance!`](crate::backend_conformance) turns the list into
//! one `#[tokio::test]` per case:
//!
//! ```ignore
//! covet_test::backend_conformance!(memory, async {
//!     Some(std::sync::Arc::new(MemoryBackend::new()) as std::sync::Arc<dyn CacheBackend>)
//! });
//! ```
//!
//! The expression yields `Option<Arc<dyn CacheBackend>>`; `None` skips the
//! cases (use [`require`](crate::require), which panics under CI instead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use covet_cache::{Cache, CacheBackend, Entry, Error, KeyTtl};

use crate::unique_namespace;

/// The backend under test.
pub type Backend = Arc<dyn CacheBackend>;

/// What a running case wrote under: removed once the case passed.
enum Written {
    /// A key prefix from [`ns`].
    Prefix(String),
    /// A cache from [`cache_over`].
    Cache(Cache),
}

tokio::task_local! {
    /// The namespaces of the case [`run_case`] is running.
    static WRITTEN: std::cell::RefCell<Vec<Written>>;
}

/// Notes `what` for [`run_case`]'s clean-up (nothing outside a case).
fn remember(what: Written) {
    let _ = WRITTEN.try_with(|w| w.borrow_mut().push(what));
}

/// A `Cache` over `backend` in a fresh namespace (removed after the case,
/// inside [`run_case`]).
pub fn cache_over(backend: &Backend, prefix: &str) -> Cache {
    let cache = Cache::builder()
        .shared_backend(backend.clone())
        .namespace(unique_namespace(prefix))
        .build()
        .expect("a valid namespace");
    remember(Written::Cache(cache.clone()));
    cache
}

/// A fresh key prefix (removed after the case, inside [`run_case`]).
fn ns() -> String {
    let p = format!("{}:", unique_namespace("conf"));
    remember(Written::Prefix(p.clone()));
    p
}

/// Runs one case, then removes what it wrote under the namespaces it took
/// from [`ns`] and [`cache_over`], keys without an expiry and the tag
/// bookkeeping included, so the shared servers do not collect the suite's
/// keys run after run. A case that fails leaves them, to look at. On a
/// backend without pattern deletes (memcached, which the test command
/// starts for the suite alone) nothing is removed.
#[doc(hidden)]
pub async fn run_case(backend: &Backend, case: impl std::future::Future<Output = ()>) {
    let written = WRITTEN
        .scope(std::cell::RefCell::new(Vec::new()), async {
            case.await;
            WRITTEN.with(|w| w.take())
        })
        .await;
    if !backend.capabilities().pattern_deletes {
        return;
    }
    for what in written {
        let (removed, name) = match &what {
            Written::Prefix(p) => (backend.clear(p).await, p.as_str()),
            Written::Cache(c) => (c.clear().await, c.namespace()),
        };
        if let Err(e) = removed {
            panic!("removing what the case wrote under {name}: {e}");
        }
    }
}

/// A TTL of `ms` milliseconds, or the backend's TTL step if that is longer
/// (memcached stores whole seconds).
fn ttl(b: &Backend, ms: u64) -> Duration {
    Duration::from_millis(ms).max(b.capabilities().ttl_resolution)
}

/// Waits `ms` milliseconds past a TTL from [`ttl`]; on a backend whose TTL
/// step is coarse, two steps more (rounding up, and its clock's tick).
async fn outlive(b: &Backend, ms: u64) {
    let step = b.capabilities().ttl_resolution;
    let extra = if step > Duration::from_millis(1) {
        step * 2
    } else {
        Duration::ZERO
    };
    tokio::time::sleep(Duration::from_millis(ms) + extra).await;
}

/// A count from `clear`, `delete_pattern` or `invalidate_tag`: exact where
/// the backend counts ([`Capabilities::exact_counts`](covet_cache::Capabilities)),
/// otherwise never more than what there was.
#[track_caller]
fn count(b: &Backend, got: u64, exact: u64) {
    if b.capabilities().exact_counts {
        assert_eq!(got, exact);
    } else {
        assert!(got <= exact, "counted {got}, there were {exact}");
    }
}

/// A backend that cannot enumerate keys refuses pattern deletes, through
/// `Cache` before anything is sent; `true` if so (the case ends there).
async fn no_patterns(b: &Backend) -> bool {
    if b.capabilities().pattern_deletes {
        return false;
    }
    let c = cache_over(b, "nopat");
    let err = c.delete_pattern("user:*").await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    true
}

/// Every case, in the order the macro lists them.
pub const CASES: &[&str] = &[
    "get_set_and_overwrite",
    "ttl_expiry",
    "get_many_in_order",
    "set_many_with_and_without_ttl",
    "delete_and_delete_many",
    "patterns_with_classes_and_escapes",
    "patterns_stay_inside_the_namespace",
    "clear_is_limited_to_the_namespace",
    "exists_and_ttl",
    "incr_counts_atomically",
    "incr_rejects_non_integers_and_overflow",
    "tags",
    "large_values",
    "many_keys_across_scan_pages",
    "leases",
    "zero_ttl_through_cache",
    "get_with_ttl",
    "invalidate_tag_lists_keys",
    "raw_bytes_round_trip",
    "all_byte_values",
    "value_size_limits",
    "special_keys_never_match_wrongly",
    "batches_keep_order_with_partial_hits",
    "incr_is_atomic_under_50_tasks",
    "mixed_load_of_200_tasks",
    "count_pattern_counts_live_keys",
];

/// `count_pattern`: live keys only, inside the pattern only; a backend
/// that cannot enumerate keys says so.
pub async fn count_pattern_counts_live_keys(b: Backend) {
    let p = ns();
    let pattern = format!("{p}user:*");
    if !b.capabilities().pattern_deletes {
        assert!(matches!(
            b.count_pattern(&pattern).await,
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    for i in 0..5 {
        b.set(&format!("{p}user:{i}"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    b.set(&format!("{p}team:1"), Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    let short = ttl(&b, 150);
    b.set(
        &format!("{p}user:gone"),
        Bytes::from_static(b"v"),
        Some(short),
    )
    .await
    .unwrap();
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    assert_eq!(b.count_pattern(&pattern).await.unwrap(), 5);
    assert_eq!(b.count_pattern(&format!("{p}*")).await.unwrap(), 6);
    assert_eq!(b.count_pattern(&format!("{p}nothing*")).await.unwrap(), 0);
    assert!(matches!(
        b.count_pattern(&format!("{p}user:[")).await,
        Err(Error::InvalidPattern { .. })
    ));
}

/// Set, get, overwrite, binary and empty values, missing keys.
pub async fn get_set_and_overwrite(b: Backend) {
    let p = ns();
    let k = format!("{p}k");
    assert_eq!(b.get(&k).await.unwrap(), None);
    b.set(&k, Bytes::from_static(b"one"), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    b.set(&k, Bytes::from_static(b"two"), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"two"[..]));
    let binary: Vec<u8> = (0..=255u8).collect();
    let kb = format!("{p}binary");
    b.set(&kb, Bytes::from(binary.clone()), None).await.unwrap();
    assert_eq!(b.get(&kb).await.unwrap().as_deref(), Some(&binary[..]));
    let ke = format!("{p}empty");
    b.set(&ke, Bytes::new(), None).await.unwrap();
    assert_eq!(b.get(&ke).await.unwrap().as_deref(), Some(&b""[..]));
    // unusual characters in keys
    let odd = format!("{p}user:ü:*:?:[x]:{{tag}}:\\");
    b.set(&odd, Bytes::from_static(b"odd"), None).await.unwrap();
    assert_eq!(b.get(&odd).await.unwrap().as_deref(), Some(&b"odd"[..]));
    count(&b, b.clear(&p).await.unwrap(), 4);
}

/// Values expire after their TTL; a rewrite without TTL makes them persistent.
pub async fn ttl_expiry(b: Backend) {
    let p = ns();
    let short = format!("{p}short");
    let long = format!("{p}long");
    // While its TTL runs the value is there, with a TTL no longer than the
    // one set. On a loaded machine the write and the two reads can take
    // longer than a short TTL: the same checks then run again with a TTL
    // twice as long, until they fit in one.
    let mut life = ttl(&b, 150);
    loop {
        let written = Instant::now();
        b.set(&short, "s".into(), Some(life)).await.unwrap();
        let present = b.exists(&short).await.unwrap();
        let left = b.ttl(&short).await.unwrap();
        if let KeyTtl::Expires(d) = left {
            assert!(d <= life, "{d:?}");
        }
        if written.elapsed() < life {
            assert!(present, "gone before its TTL");
            assert!(
                matches!(left, KeyTtl::Expires(_)),
                "expected a TTL, got {left:?}"
            );
            break;
        }
        assert!(
            life < Duration::from_secs(20),
            "a write and two reads never fit in {life:?}"
        );
        life *= 2;
    }
    b.set(&long, "l".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    outlive(&b, life.as_millis() as u64 + 250).await;
    assert_eq!(b.get(&short).await.unwrap(), None);
    assert!(!b.exists(&short).await.unwrap());
    assert_eq!(b.ttl(&short).await.unwrap(), KeyTtl::Missing);
    assert_eq!(b.get(&long).await.unwrap().as_deref(), Some(&b"l"[..]));
    // rewriting without a TTL removes it
    b.set(&long, "l2".into(), None).await.unwrap();
    assert_eq!(b.ttl(&long).await.unwrap(), KeyTtl::Persistent);
    // and with one sets it again
    b.set(&long, "l3".into(), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        matches!(b.ttl(&long).await.unwrap(), KeyTtl::Expires(d) if d <= Duration::from_secs(5) && d >= Duration::from_secs(3))
    );
    // a TTL below one millisecond still stores the value for a moment, never forever
    let tiny = format!("{p}tiny");
    b.set(
        &tiny,
        "t".into(),
        Some(ttl(&b, 0).max(Duration::from_micros(300))),
    )
    .await
    .unwrap();
    outlive(&b, 50).await;
    assert_eq!(b.get(&tiny).await.unwrap(), None);
    b.clear(&p).await.unwrap();
}

/// `get_many` answers one slot per key, in order, with gaps for misses.
pub async fn get_many_in_order(b: Backend) {
    let p = ns();
    let keys: Vec<String> = (0..100).map(|i| format!("{p}k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            b.set(k, Bytes::from(i.to_string()), None).await.unwrap();
        }
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = b.get_many(&refs).await.unwrap();
    assert_eq!(got.len(), 100);
    for (i, v) in got.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(v, &None, "key {i}");
        } else {
            assert_eq!(v.as_deref(), Some(i.to_string().as_bytes()), "key {i}");
        }
    }
    assert!(b.get_many(&[]).await.unwrap().is_empty());
    // the same key twice
    let twice = [refs[1], refs[1], refs[0]];
    let got = b.get_many(&twice).await.unwrap();
    assert_eq!(got[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(got[1].as_deref(), Some(&b"1"[..]));
    assert_eq!(got[2], None);
    b.clear(&p).await.unwrap();
}

/// `set_many` writes every entry with one TTL.
pub async fn set_many_with_and_without_ttl(b: Backend) {
    let p = ns();
    let keys: Vec<String> = (0..50).map(|i| format!("{p}m{i}")).collect();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), Bytes::from(format!("v{i}"))))
        .collect();
    b.set_many(&entries, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = b.get_many(&refs).await.unwrap();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    for k in &refs {
        assert!(
            matches!(b.ttl(k).await.unwrap(), KeyTtl::Expires(d) if d <= Duration::from_secs(30))
        );
    }
    b.set_many(&entries[..10], None).await.unwrap();
    assert_eq!(b.ttl(refs[0]).await.unwrap(), KeyTtl::Persistent);
    assert!(matches!(b.ttl(refs[10]).await.unwrap(), KeyTtl::Expires(_)));
    b.set_many(&[], None).await.unwrap();
    // a short TTL expires them all
    b.set_many(&entries[..5], Some(ttl(&b, 100))).await.unwrap();
    outlive(&b, 300).await;
    assert!(
        b.get_many(&refs[..5])
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    count(&b, b.clear(&p).await.unwrap(), 45);
}

/// `delete` says whether the key existed; `delete_many` counts.
pub async fn delete_and_delete_many(b: Backend) {
    let p = ns();
    let k: Vec<String> = (0..5).map(|i| format!("{p}d{i}")).collect();
    for key in &k {
        b.set(key, "x".into(), None).await.unwrap();
    }
    assert!(b.delete(&k[0]).await.unwrap());
    assert!(!b.delete(&k[0]).await.unwrap());
    assert_eq!(b.get(&k[0]).await.unwrap(), None);
    let missing = format!("{p}missing");
    let refs = [
        k[1].as_str(),
        k[2].as_str(),
        missing.as_str(),
        k[0].as_str(),
    ];
    assert_eq!(b.delete_many(&refs).await.unwrap(), 2);
    assert_eq!(b.delete_many(&[]).await.unwrap(), 0);
    assert!(b.exists(&k[3]).await.unwrap());
    // an expired key does not count
    let e = format!("{p}expiring");
    b.set(&e, "x".into(), Some(ttl(&b, 50))).await.unwrap();
    outlive(&b, 200).await;
    assert!(!b.delete(&e).await.unwrap());
    count(&b, b.clear(&p).await.unwrap(), 2);
}

/// Glob patterns: `*`, `?`, classes, negated classes, ranges, escapes.
pub async fn patterns_with_classes_and_escapes(b: Backend) {
    if no_patterns(&b).await {
        return;
    }
    let c = cache_over(&b, "pat");
    for k in [
        "user:1", "user:2", "user:10", "user:a", "team:1", "ax", "bx", "cx", "dx", "a*b", "aXb",
        "q?", "qq", "é1", "éé",
    ] {
        c.set(k, &1u8, None).await.unwrap();
    }
    count(&b, c.delete_pattern("user:?").await.unwrap(), 3); // 1, 2, a
    assert!(c.exists("user:10").await.unwrap());
    count(&b, c.delete_pattern("user:[0-9]*").await.unwrap(), 1); // 10
    count(&b, c.delete_pattern("[ab]x").await.unwrap(), 2);
    count(&b, c.delete_pattern("[!c]x").await.unwrap(), 1); // dx
    assert!(c.exists("cx").await.unwrap());
    count(&b, c.delete_pattern("a\\*b").await.unwrap(), 1); // only the literal `*`
    assert!(c.exists("aXb").await.unwrap());
    count(&b, c.delete_pattern("q\\?").await.unwrap(), 1);
    assert!(c.exists("qq").await.unwrap());
    // `?` is one character, also when it takes several bytes
    count(&b, c.delete_pattern("é?").await.unwrap(), 2);
    count(&b, c.delete_pattern("nothing*").await.unwrap(), 0);
    assert!(matches!(
        c.delete_pattern("user:[").await,
        Err(Error::InvalidPattern { .. })
    ));
    count(&b, c.clear().await.unwrap(), 4); // team:1, cx, aXb, qq
}

/// A user's `:`, `*` or `?` never reaches into another namespace, also when
/// one namespace's name is a prefix of another's.
pub async fn patterns_stay_inside_the_namespace(b: Backend) {
    if no_patterns(&b).await {
        return;
    }
    let base = unique_namespace("iso");
    let mk = |ns: String| {
        Cache::builder()
            .shared_backend(b.clone())
            .namespace(ns)
            .build()
            .unwrap()
    };
    let a = mk(base.clone());
    let longer = mk(format!("{base}2"));
    for k in ["user:1", "x*y", "*", ":", "a:b:c"] {
        a.set(k, &1u8, None).await.unwrap();
        longer.set(k, &2u8, None).await.unwrap();
    }
    count(&b, a.delete_pattern("x\\*y").await.unwrap(), 1);
    assert_eq!(longer.get::<u8>("x*y").await.unwrap(), Some(2));
    count(&b, a.delete_pattern("*").await.unwrap(), 4);
    for k in ["user:1", "x*y", "*", ":", "a:b:c"] {
        assert_eq!(longer.get::<u8>(k).await.unwrap(), Some(2), "{k}");
    }
    // a pattern that starts like a namespace is still inside this one
    a.set("z", &1u8, None).await.unwrap();
    count(
        &b,
        a.delete_pattern(&format!("{base}2:*")).await.unwrap(),
        0,
    );
    count(&b, longer.clear().await.unwrap(), 5);
    count(&b, a.clear().await.unwrap(), 1);
}

/// `clear` removes exactly the namespace's keys.
pub async fn clear_is_limited_to_the_namespace(b: Backend) {
    let base = unique_namespace("clr");
    let a = Cache::builder()
        .shared_backend(b.clone())
        .namespace(base.clone())
        .build()
        .unwrap();
    let other = Cache::builder()
        .shared_backend(b.clone())
        .namespace(format!("{base}x"))
        .build()
        .unwrap();
    for i in 0..20 {
        a.set(&format!("k{i}"), &i, None).await.unwrap();
    }
    a.set_tagged("tagged", &1u8, None, &["t"]).await.unwrap();
    other.set("k0", &99u32, None).await.unwrap();
    count(&b, a.clear().await.unwrap(), 21);
    count(&b, a.clear().await.unwrap(), 0);
    assert_eq!(a.get::<u32>("k0").await.unwrap(), None);
    assert_eq!(other.get::<u32>("k0").await.unwrap(), Some(99));
    // the tag no longer knows any key
    a.set("tagged", &2u8, None).await.unwrap();
    count(&b, a.invalidate_tag("t").await.unwrap(), 0);
    count(&b, other.clear().await.unwrap(), 1);
    a.clear().await.unwrap();
}

/// `exists` and `ttl` for missing, persistent and expiring keys.
pub async fn exists_and_ttl(b: Backend) {
    let p = ns();
    let (m, per, exp) = (
        format!("{p}missing"),
        format!("{p}persistent"),
        format!("{p}expiring"),
    );
    assert!(!b.exists(&m).await.unwrap());
    assert_eq!(b.ttl(&m).await.unwrap(), KeyTtl::Missing);
    b.set(&per, "p".into(), None).await.unwrap();
    assert!(b.exists(&per).await.unwrap());
    assert_eq!(b.ttl(&per).await.unwrap(), KeyTtl::Persistent);
    b.set(&exp, "e".into(), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    match b.ttl(&exp).await.unwrap() {
        KeyTtl::Expires(d) => {
            assert!(
                d <= Duration::from_secs(10) && d > Duration::from_secs(8),
                "{d:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    count(&b, b.clear(&p).await.unwrap(), 2);
}

/// `incr`: starts at 0, TTL only on creation, atomic under concurrency.
pub async fn incr_counts_atomically(b: Backend) {
    let p = ns();
    let k = format!("{p}counter");
    assert_eq!(
        b.incr(&k, 5, Some(Duration::from_secs(60))).await.unwrap(),
        5
    );
    assert_eq!(b.incr(&k, -7, None).await.unwrap(), -2);
    // the TTL given at creation stays; a later TTL argument is ignored
    assert_eq!(
        b.incr(&k, 2, Some(Duration::from_secs(1))).await.unwrap(),
        0
    );
    assert!(matches!(b.ttl(&k).await.unwrap(), KeyTtl::Expires(d) if d > Duration::from_secs(50)));
    // a counter created without TTL never expires
    let per = format!("{p}persistent");
    assert_eq!(b.incr(&per, 1, None).await.unwrap(), 1);
    assert_eq!(b.ttl(&per).await.unwrap(), KeyTtl::Persistent);
    // counters are decimal text, and decimal text counts
    assert_eq!(b.get(&per).await.unwrap().as_deref(), Some(&b"1"[..]));
    let text = format!("{p}text");
    b.set(&text, "41".into(), None).await.unwrap();
    assert_eq!(b.incr(&text, 1, None).await.unwrap(), 42);
    // an expired counter starts again from zero, with the new TTL
    let short = format!("{p}short");
    b.incr(&short, 10, Some(ttl(&b, 100))).await.unwrap();
    outlive(&b, 300).await;
    assert_eq!(
        b.incr(&short, 1, Some(Duration::from_secs(30)))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(b.ttl(&short).await.unwrap(), KeyTtl::Expires(_)));
    // atomic under concurrency
    let shared = format!("{p}shared");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let b = b.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    b.incr(&shared, 1, Some(Duration::from_secs(60)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.incr(&shared, 0, None).await.unwrap(), 500);
    count(&b, b.clear(&p).await.unwrap(), 5);
}

/// `incr` on a non-integer or past `i64::MAX` fails and leaves the value alone.
pub async fn incr_rejects_non_integers_and_overflow(b: Backend) {
    let p = ns();
    let s = format!("{p}s");
    b.set(&s, "abc".into(), None).await.unwrap();
    assert!(matches!(
        b.incr(&s, 1, None).await,
        Err(Error::NotAnInteger { .. })
    ));
    assert!(matches!(
        b.incr(&s, 1, Some(Duration::from_secs(5))).await,
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(b.get(&s).await.unwrap().as_deref(), Some(&b"abc"[..]));
    assert_eq!(b.ttl(&s).await.unwrap(), KeyTtl::Persistent);
    let max = format!("{p}max");
    b.set(&max, i64::MAX.to_string().into(), None)
        .await
        .unwrap();
    assert!(matches!(
        b.incr(&max, 1, None).await,
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(
        b.get(&max).await.unwrap().as_deref(),
        Some(i64::MAX.to_string().as_bytes())
    );
    let min = format!("{p}min");
    assert_eq!(b.incr(&min, i64::MIN, None).await.unwrap(), i64::MIN);
    assert!(b.incr(&min, -1, None).await.is_err());
    assert_eq!(b.incr(&min, i64::MAX, None).await.unwrap(), -1);
    // through the facade, the error names the user key
    let c = cache_over(&b, "incr");
    c.set("json", &"not a number".to_string(), None)
        .await
        .unwrap();
    match c.incr("json", 1, None).await {
        Err(Error::NotAnInteger { key }) => assert_eq!(key, "json"),
        other => panic!("{other:?}"),
    }
    c.clear().await.unwrap();
    b.clear(&p).await.unwrap();
}

/// Tags: invalidation deletes the members, only them, only in the namespace.
pub async fn tags(b: Backend) {
    let c = cache_over(&b, "tags");
    let other = cache_over(&b, "tags");
    c.set_tagged("u1", &1u8, None, &["user", "all"])
        .await
        .unwrap();
    c.set_tagged("u2", &2u8, Some(Duration::from_secs(60)), &["user", "all"])
        .await
        .unwrap();
    c.set_tagged("t1", &3u8, None, &["team", "all"])
        .await
        .unwrap();
    c.set("plain", &4u8, None).await.unwrap();
    other.set_tagged("u1", &9u8, None, &["user"]).await.unwrap();
    count(&b, c.invalidate_tag("user").await.unwrap(), 2);
    assert_eq!(c.get::<u8>("u1").await.unwrap(), None);
    assert_eq!(c.get::<u8>("u2").await.unwrap(), None);
    assert_eq!(c.get::<u8>("t1").await.unwrap(), Some(3));
    assert_eq!(c.get::<u8>("plain").await.unwrap(), Some(4));
    assert_eq!(other.get::<u8>("u1").await.unwrap(), Some(9));
    count(&b, c.invalidate_tag("user").await.unwrap(), 0);
    count(&b, c.invalidate_tag("all").await.unwrap(), 1); // t1; u1, u2 are gone
    count(&b, c.invalidate_tag("never-used").await.unwrap(), 0);

    // a short-lived member does not shorten the tag for a long-lived one,
    // and an expired member is not counted
    c.set_tagged("long", &1u8, None, &["mixed"]).await.unwrap();
    c.set_tagged("short", &1u8, Some(ttl(&b, 100)), &["mixed"])
        .await
        .unwrap();
    outlive(&b, 300).await;
    count(&b, c.invalidate_tag("mixed").await.unwrap(), 1);
    assert_eq!(c.get::<u8>("long").await.unwrap(), None);

    // a tagged value rewritten with the tag is still a member
    c.set_tagged("again", &1u8, None, &["re"]).await.unwrap();
    c.set_tagged("again", &2u8, None, &["re"]).await.unwrap();
    count(&b, c.invalidate_tag("re").await.unwrap(), 1);

    // backend level: full tag names
    let p = ns();
    let tags = vec![format!("{p}t")];
    let k = format!("{p}k");
    b.set_entry(&k, Entry::new("v".into(), None).tags(&tags))
        .await
        .unwrap();
    count(&b, b.invalidate_tag(&tags[0]).await.unwrap(), 1);
    assert!(!b.exists(&k).await.unwrap());

    count(&b, c.clear().await.unwrap(), 1); // plain
    other.clear().await.unwrap();
}

/// A 1 MiB value (or the largest the backend holds, if less) round-trips
/// unchanged, raw and through the facade.
pub async fn large_values(b: Backend) {
    let p = ns();
    let size = b
        .capabilities()
        .max_value_len
        .map_or(1 << 20, |limit| limit.min(1 << 20) - 64);
    let big: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let k = format!("{p}big");
    b.set(&k, Bytes::from(big.clone()), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&big[..]));
    let got = b.get_many(&[k.as_str()]).await.unwrap();
    assert_eq!(got[0].as_deref().map(<[u8]>::len), Some(size));
    let c = cache_over(&b, "big");
    let s = "x".repeat(size - 64);
    c.set("s", &s, None).await.unwrap();
    assert_eq!(c.get::<String>("s").await.unwrap().as_deref(), Some(&s[..]));
    c.clear().await.unwrap();
    b.clear(&p).await.unwrap();
}

/// Raw bytes of any shape read back unchanged (also bytes that start like
/// a backend's own wrapper), through every read: get, get_many,
/// get_with_ttl, exists.
pub async fn raw_bytes_round_trip(b: Backend) {
    let p = ns();
    let shapes: [&[u8]; 5] = [
        b"",
        b"\xc7",
        b"\xc7\x01\x00\x01t",
        b"\x01envelope",
        &[0xff; 40],
    ];
    for (i, raw) in shapes.iter().enumerate() {
        let k = format!("{p}raw{i}");
        b.set(&k, Bytes::copy_from_slice(raw), None).await.unwrap();
        assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(*raw), "get {i}");
        let many = b.get_many(&[k.as_str()]).await.unwrap();
        assert_eq!(many[0].as_deref(), Some(*raw), "get_many {i}");
        let (v, _) = b.get_with_ttl(&k).await.unwrap().unwrap();
        assert_eq!(&v[..], *raw, "get_with_ttl {i}");
        assert!(b.exists(&k).await.unwrap());
    }
    let entries: Vec<(String, Bytes)> = shapes
        .iter()
        .enumerate()
        .map(|(i, raw)| (format!("{p}many{i}"), Bytes::copy_from_slice(raw)))
        .collect();
    let pairs: Vec<(&str, Bytes)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    b.set_many(&pairs, None).await.unwrap();
    for (k, v) in &entries {
        assert_eq!(b.get(k).await.unwrap().as_ref(), Some(v));
    }
    b.clear(&p).await.unwrap();
}

/// Pattern deletes and `clear` see every key, over many `SCAN` pages.
pub async fn many_keys_across_scan_pages(b: Backend) {
    let c = cache_over(&b, "many");
    let keys: Vec<String> = (0..2500).map(|i| format!("k:{i}")).collect();
    let entries: Vec<(&str, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    c.set_many(&entries, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    c.set_many(&[("other:1", 1u32), ("other:2", 2)], None)
        .await
        .unwrap();
    let probe: Vec<&str> = keys.iter().step_by(250).map(String::as_str).collect();
    let got: Vec<Option<u32>> = c.get_many(&probe).await.unwrap();
    assert!(got.iter().all(Option::is_some));
    if !no_patterns(&b).await {
        count(&b, c.delete_pattern("k:*").await.unwrap(), 2500);
        assert_eq!(c.get::<u32>("k:2499").await.unwrap(), None);
        assert_eq!(c.get::<u32>("other:1").await.unwrap(), Some(1));
    }
    // clear over many pages as well
    c.set_many(&entries, None).await.unwrap();
    count(&b, c.clear().await.unwrap(), 2502);
}

/// Leases: one holder at a time, released only by its token, expiring.
pub async fn leases(b: Backend) {
    let p = ns();
    let k = format!("{p}job");
    if !b.supports_leases() {
        assert_eq!(
            b.lease_acquire(&k, Duration::from_secs(1)).await.unwrap(),
            None
        );
        return;
    }
    let token = b
        .lease_acquire(&k, Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a free lease is granted");
    assert_eq!(
        b.lease_acquire(&k, Duration::from_secs(10)).await.unwrap(),
        None
    );
    assert!(!b.lease_release(&k, "not-the-token").await.unwrap());
    assert_eq!(
        b.lease_acquire(&k, Duration::from_secs(10)).await.unwrap(),
        None
    );
    // leases are not values: invisible to reads, patterns and clear
    assert_eq!(b.get(&k).await.unwrap(), None);
    count(&b, b.clear(&p).await.unwrap(), 0);
    assert!(b.lease_release(&k, &token).await.unwrap());
    assert!(!b.lease_release(&k, &token).await.unwrap());
    let t2 = b
        .lease_acquire(&k, ttl(&b, 100))
        .await
        .unwrap()
        .expect("released, so free again");
    assert_ne!(t2, token);
    outlive(&b, 300).await;
    let t3 = b
        .lease_acquire(&k, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("expired, so free again");
    // the expired holder cannot release the new holder's lease
    assert!(!b.lease_release(&k, &t2).await.unwrap());
    assert!(b.lease_release(&k, &t3).await.unwrap());
    // exactly one of many concurrent callers gets it
    let winners: Vec<_> = (0..16)
        .map(|_| {
            let b = b.clone();
            let k = k.clone();
            tokio::spawn(async move { b.lease_acquire(&k, Duration::from_secs(5)).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for w in winners {
        if let Some(t) = w.await.unwrap() {
            granted.push(t);
        }
    }
    assert_eq!(granted.len(), 1);
    assert!(b.lease_release(&k, &granted[0]).await.unwrap());
}

/// Through the facade, a zero TTL deletes.
pub async fn zero_ttl_through_cache(b: Backend) {
    let c = cache_over(&b, "zero");
    c.set("k", &1u8, None).await.unwrap();
    c.set("k", &2u8, Some(Duration::ZERO)).await.unwrap();
    assert_eq!(c.get::<u8>("k").await.unwrap(), None);
    assert!(!c.exists("k").await.unwrap());
    c.set_many(&[("a", 1u8), ("b", 2u8)], None).await.unwrap();
    c.set_many(&[("a", 1u8)], Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(c.get::<u8>("a").await.unwrap(), None);
    count(&b, c.clear().await.unwrap(), 1);
}

/// `get_with_ttl` reads the value and its remaining lifetime together.
pub async fn get_with_ttl(b: Backend) {
    let p = ns();
    let (per, exp, missing) = (format!("{p}p"), format!("{p}e"), format!("{p}m"));
    assert_eq!(b.get_with_ttl(&missing).await.unwrap(), None);
    b.set(&per, "p".into(), None).await.unwrap();
    b.set(&exp, "e".into(), Some(Duration::from_secs(20)))
        .await
        .unwrap();
    let (v, ttl) = b.get_with_ttl(&per).await.unwrap().unwrap();
    assert_eq!((&v[..], ttl), (&b"p"[..], KeyTtl::Persistent));
    let (v, ttl) = b.get_with_ttl(&exp).await.unwrap().unwrap();
    assert_eq!(&v[..], b"e");
    assert!(
        matches!(ttl, KeyTtl::Expires(d) if d <= Duration::from_secs(20) && d > Duration::from_secs(15)),
        "{ttl:?}"
    );
    count(&b, b.clear(&p).await.unwrap(), 2);
}

/// `invalidate_tag_keys` counts like `invalidate_tag` and, when it lists
/// keys, lists every member it deleted.
pub async fn invalidate_tag_lists_keys(b: Backend) {
    let p = ns();
    let tags = vec![format!("{p}t")];
    let keys: Vec<String> = (0..3).map(|i| format!("{p}k{i}")).collect();
    for k in &keys {
        b.set_entry(k, Entry::new("v".into(), None).tags(&tags))
            .await
            .unwrap();
    }
    let (n, listed) = b.invalidate_tag_keys(&tags[0]).await.unwrap();
    count(&b, n, 3);
    if b.capabilities().exact_tag_keys {
        assert!(listed.is_some(), "a backend with exact tag keys lists them");
    }
    if let Some(mut listed) = listed {
        listed.sort();
        assert_eq!(listed, keys);
    }
    for k in &keys {
        assert!(!b.exists(k).await.unwrap());
    }
    let (n, _) = b.invalidate_tag_keys(&tags[0]).await.unwrap();
    assert_eq!(n, 0);
}

/// Every byte value, alone and all 256 in one value, and the empty value.
pub async fn all_byte_values(b: Backend) {
    let p = ns();
    let all: Vec<u8> = (0..=255u8).collect();
    let k = format!("{p}all");
    b.set(&k, Bytes::from(all.clone()), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&all[..]));
    for byte in 0..=255u8 {
        let k = format!("{p}b{byte}");
        b.set(&k, Bytes::from(vec![byte]), None).await.unwrap();
    }
    let keys: Vec<String> = (0..=255u8).map(|byte| format!("{p}b{byte}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = b.get_many(&refs).await.unwrap();
    for (byte, v) in got.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(&[byte as u8][..]), "byte {byte}");
    }
    let empty = format!("{p}empty");
    b.set(&empty, Bytes::new(), None).await.unwrap();
    assert_eq!(b.get(&empty).await.unwrap().as_deref(), Some(&b""[..]));
    assert!(b.exists(&empty).await.unwrap());
    b.clear(&p).await.unwrap();
}

/// Values just under the backend's limit are stored; just over it, a typed
/// error and nothing stored (through `Cache` too). Backends whose limit is
/// above 16 MiB are checked up to 1 MiB only.
pub async fn value_size_limits(b: Backend) {
    let caps = b.capabilities();
    let Some(limit) = caps.max_value_len.filter(|l| *l <= 16 << 20) else {
        let k = format!("{}mib", ns());
        b.set(&k, Bytes::from(vec![7u8; 1 << 20]), None)
            .await
            .unwrap();
        assert_eq!(b.get(&k).await.unwrap().map(|v| v.len()), Some(1 << 20));
        b.delete(&k).await.unwrap();
        return;
    };
    let p = ns();
    let under = format!("{p}under");
    b.set(&under, Bytes::from(vec![1u8; limit]), None)
        .await
        .unwrap();
    assert_eq!(b.get(&under).await.unwrap().map(|v| v.len()), Some(limit));
    let over = format!("{p}over");
    b.set(&over, Bytes::from_static(b"old"), None)
        .await
        .unwrap();
    let err = b
        .set(&over, Bytes::from(vec![1u8; limit + 1]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size, .. } if size == limit + 1),
        "{err}"
    );
    assert_eq!(
        b.get(&over).await.unwrap().as_deref(),
        Some(&b"old"[..]),
        "nothing stored"
    );
    let err = b
        .set_many(&[(over.as_str(), Bytes::from(vec![1u8; limit + 1]))], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    let c = cache_over(&b, "limit");
    let err = c
        .set("big", &vec![0u8; limit + 10], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { limit: l, .. } if l == limit),
        "{err}"
    );
    assert_eq!(c.get::<Vec<u8>>("big").await.unwrap(), None);
    c.clear().await.unwrap();
    b.clear(&p).await.unwrap();
}

/// Keys holding glob, SQL and shell metacharacters, spaces, unicode, case
/// variants and the longest accepted key: each is its own key, a pattern
/// matching one of them literally deletes exactly that one.
pub async fn special_keys_never_match_wrongly(b: Backend) {
    let c = cache_over(&b, "special");
    let long = format!("long:{}", "é".repeat((covet_cache::MAX_KEY_LEN - 5) / 2));
    let mut keys: Vec<String> = [
        "a:b",
        "a*",
        "a?",
        "a%",
        "a_",
        "a'",
        "a\\",
        "a b",
        "a ",
        "a",
        "A",
        "ключ",
        "键:値",
        "a[1]",
        "a'; DROP TABLE x; --",
        "%_%",
        "\\%",
    ]
    .iter()
    .map(|k| (*k).to_owned())
    .collect();
    keys.push(long.clone());
    if let Some(max) = b.capabilities().max_key_len {
        keys.retain(|k| k.len() + 64 <= max);
    }
    for (i, k) in keys.iter().enumerate() {
        c.set(k, &(i as u32), None).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get::<u32>(k).await.unwrap(), Some(i as u32), "key {k:?}");
    }
    if b.capabilities().pattern_deletes {
        // `%` and `_` are literal, as is an escaped `*`
        for literal in ["a%", "a_", "a\\*", "a\\?", "\\%_\\%", "a "] {
            let n = c.delete_pattern(literal).await.unwrap();
            assert_eq!(n, 1, "pattern {literal:?}");
        }
        for gone in ["a%", "a_", "a*", "a?", "%_%", "a "] {
            assert_eq!(c.get::<u32>(gone).await.unwrap(), None, "{gone:?}");
        }
        for kept in ["a", "A", "a b", "a'", "a\\", "\\%", "a:b"] {
            assert!(c.get::<u32>(kept).await.unwrap().is_some(), "{kept:?} kept");
        }
    }
    assert!(c.delete("a").await.unwrap());
    assert!(
        c.get::<u32>("A").await.unwrap().is_some(),
        "case is significant"
    );
    assert!(c.get::<u32>("a b").await.unwrap().is_some());
    c.clear().await.unwrap();
}

/// Batches answer in the order asked, with misses in place and repeated keys.
pub async fn batches_keep_order_with_partial_hits(b: Backend) {
    let p = ns();
    let keys: Vec<String> = (0..600).map(|i| format!("{p}k{i}")).collect();
    let stored: Vec<(&str, Bytes)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 1)
        .map(|(i, k)| (k.as_str(), Bytes::from(i.to_string())))
        .collect();
    b.set_many(&stored, None).await.unwrap();
    let mut asked: Vec<&str> = keys.iter().rev().map(String::as_str).collect();
    asked.push(keys[0].as_str());
    asked.push(keys[1].as_str());
    let got = b.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), asked.len());
    for (k, v) in asked.iter().zip(&got) {
        let i: usize = k.rsplit('k').next().unwrap().parse().unwrap();
        if i % 3 == 1 {
            assert_eq!(v, &None, "{k}");
        } else {
            assert_eq!(v.as_deref(), Some(i.to_string().as_bytes()), "{k}");
        }
    }
    let doomed: Vec<&str> = keys[..10].iter().map(String::as_str).collect();
    assert_eq!(b.delete_many(&doomed).await.unwrap(), 7);
    b.clear(&p).await.unwrap();
}

/// 50 tasks adding to one new counter at once lose no increment.
pub async fn incr_is_atomic_under_50_tasks(b: Backend) {
    let k = format!("{}counter", ns());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let b = b.clone();
            let k = k.clone();
            tokio::spawn(async move {
                for _ in 0..4 {
                    b.incr(
                        &k,
                        if i % 2 == 0 { 3 } else { -1 },
                        Some(Duration::from_secs(60)),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.incr(&k, 0, None).await.unwrap(), 25 * 4 * 3 - 25 * 4);
    b.delete(&k).await.unwrap();
}

/// 200 tasks mixing every operation on overlapping keys: no errors, and
/// every read is a value some task wrote.
pub async fn mixed_load_of_200_tasks(b: Backend) {
    let p = ns();
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let b = b.clone();
            let p = p.clone();
            tokio::spawn(async move {
                let k = format!("{p}k{}", i % 20);
                let v = Bytes::from(format!("v{}", i % 20));
                match i % 8 {
                    0 => b.set(&k, v, Some(Duration::from_secs(60))).await.map(drop),
                    1 => b.get(&k).await.map(|got| {
                        assert!(got.is_none_or(|g| g == v), "foreign value");
                    }),
                    2 => b.get_many(&[k.as_str(), "nope"]).await.map(drop),
                    3 => b.delete(&k).await.map(drop),
                    4 => b.incr(&format!("{p}n{}", i % 5), 1, None).await.map(drop),
                    5 => b.exists(&k).await.map(drop),
                    6 => b
                        .set_entry(&k, Entry::new(v, None).tags(&[format!("{p}tag")]))
                        .await
                        .map(drop),
                    _ => b.ttl(&k).await.map(drop),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    b.invalidate_tag(&format!("{p}tag")).await.unwrap();
    b.clear(&p).await.unwrap();
}

/// One `#[tokio::test]` per conformance case, in a module named `$name`.
///
/// `$make` is an expression (evaluated once per case) that yields a future
/// of `Option<Arc<dyn CacheBackend>>`; `None` skips the case. Items of the
/// calling module are visible to it.
#[macro_export]
macro_rules! backend_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn __covet_backend() -> ::std::option::Option<$crate::conformance::Backend> {
                $make.await
            }

            $crate::backend_conformance!(@cases
                get_set_and_overwrite,
                ttl_expiry,
                get_many_in_order,
                set_many_with_and_without_ttl,
                delete_and_delete_many,
                patterns_with_classes_and_escapes,
                patterns_stay_inside_the_namespace,
                clear_is_limited_to_the_namespace,
                exists_and_ttl,
                incr_counts_atomically,
                incr_rejects_non_integers_and_overflow,
                tags,
                large_values,
                many_keys_across_scan_pages,
                leases,
                zero_ttl_through_cache,
                get_with_ttl,
                invalidate_tag_lists_keys,
                raw_bytes_round_trip,
                all_byte_values,
                value_size_limits,
                special_keys_never_match_wrongly,
                batches_keep_order_with_partial_hits,
                incr_is_atomic_under_50_tasks,
                mixed_load_of_200_tasks,
                count_pattern_counts_live_keys
            );
        }
    };
    (@cases $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::std::option::Option::Some(backend) = __covet_backend().await {
                    $crate::conformance::run_case(
                        &backend,
                        $crate::conformance::$case(backend.clone()),
                    )
                    .await;
                }
            }
        )*

        /// `#[cached]` on this backend (the calling crate depends on
        /// `covet`): concurrent calls compute once, across the lease too,
        /// then hit; `<fn>_invalidate` makes the next call compute.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn cached_fn() {
            use ::std::sync::atomic::{AtomicU32, Ordering};
            static RUNS: AtomicU32 = AtomicU32::new(0);
            let ::std::option::Option::Some(backend) = __covet_backend().await else {
                return;
            };
            let cache = $crate::conformance::cache_over(&backend, "fn");

            #[::covet::cached(cache = cache, key = "square:{n}", ttl = 60, lock)]
            async fn square(cache: &::covet::cache::Cache, n: u64) -> u64 {
                let _ = cache;
                RUNS.fetch_add(1, Ordering::SeqCst);
                ::tokio::time::sleep(::std::time::Duration::from_millis(20)).await;
                n * n
            }

            let calls: ::std::vec::Vec<_> = (0..8).map(|_| square(&cache, 12)).collect();
            for value in $crate::__join_all(calls).await {
                assert_eq!(value, 144);
            }
            assert_eq!(RUNS.load(Ordering::SeqCst), 1, "eight concurrent calls computed once");
            assert_eq!(square(&cache, 12).await, 144);
            assert_eq!(RUNS.load(Ordering::SeqCst), 1, "then a hit");
            assert!(square_invalidate(&cache, 12).await.expect("invalidate"));
            assert_eq!(square(&cache, 12).await, 144);
            assert_eq!(RUNS.load(Ordering::SeqCst), 2);
            cache.clear().await.expect("clear");
        }
    };
}
