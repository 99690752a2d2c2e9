//! Namespaces isolate caches sharing one backend; `clear` and
//! `delete_pattern` never leave their namespace.

use std::sync::Arc;

use covet::cache::{Cache, CacheBackend, ConfigError, MemoryBackend};

fn two_caches() -> (Cache, Cache, Arc<dyn CacheBackend>) {
    let backend: Arc<dyn CacheBackend> = Arc::new(MemoryBackend::new());
    let mk = |ns: &str| {
        Cache::builder()
            .shared_backend(backend.clone())
            .namespace(covet_test::unique_namespace(ns))
            .build()
            .unwrap()
    };
    (mk("a"), mk("b"), backend)
}

#[tokio::test]
async fn same_key_different_namespaces() {
    let (a, b, _) = two_caches();
    a.set("user:1", &"from a".to_string(), None).await.unwrap();
    b.set("user:1", &"from b".to_string(), None).await.unwrap();
    assert_eq!(
        a.get::<String>("user:1").await.unwrap().as_deref(),
        Some("from a")
    );
    assert_eq!(
        b.get::<String>("user:1").await.unwrap().as_deref(),
        Some("from b")
    );
    assert!(a.delete("user:1").await.unwrap());
    assert_eq!(
        b.get::<String>("user:1").await.unwrap().as_deref(),
        Some("from b")
    );
}

#[tokio::test]
async fn clear_and_patterns_stay_inside_the_namespace() {
    let (a, b, backend) = two_caches();
    for k in ["user:1", "user:2", "team:1", "user*odd"] {
        a.set(k, &1u8, None).await.unwrap();
        b.set(k, &2u8, None).await.unwrap();
    }
    assert_eq!(a.delete_pattern("user:*").await.unwrap(), 2);
    assert_eq!(a.delete_pattern("user\\*odd").await.unwrap(), 1);
    assert_eq!(a.get::<u8>("team:1").await.unwrap(), Some(1));
    assert_eq!(b.get::<u8>("user:1").await.unwrap(), Some(2));
    // a pattern cannot climb out of the namespace
    assert_eq!(a.delete_pattern("*").await.unwrap(), 1);
    assert_eq!(b.get::<u8>("team:1").await.unwrap(), Some(2));
    b.set("x", &3u8, None).await.unwrap();
    assert_eq!(b.clear().await.unwrap(), 5);
    assert!(
        !backend
            .exists(&format!("{}:x", b.namespace()))
            .await
            .unwrap()
    );
    assert!(matches!(
        a.delete_pattern("user:[").await,
        Err(covet::cache::Error::InvalidPattern { .. })
    ));
}

#[tokio::test]
async fn a_namespace_that_prefixes_another_is_still_isolated() {
    let backend: Arc<dyn CacheBackend> = Arc::new(MemoryBackend::new());
    let ns = covet_test::unique_namespace("app");
    let short = Cache::builder()
        .shared_backend(backend.clone())
        .namespace(ns.clone())
        .build()
        .unwrap();
    let long = Cache::builder()
        .shared_backend(backend)
        .namespace(format!("{ns}2"))
        .build()
        .unwrap();
    long.set("k", &1u8, None).await.unwrap();
    assert_eq!(short.clear().await.unwrap(), 0);
    assert_eq!(long.get::<u8>("k").await.unwrap(), Some(1));
}

#[test]
fn bad_namespaces_are_config_errors() {
    for ns in [
        "",
        "a:b",
        "sp ace",
        "glob*",
        "q?",
        "[x]",
        "back\\slash",
        &"n".repeat(65),
    ] {
        let err = Cache::builder().namespace(ns).build().unwrap_err();
        assert!(matches!(err, ConfigError::InvalidNamespace(_)), "{ns:?}");
    }
    assert!(matches!(
        Cache::builder()
            .default_ttl(std::time::Duration::ZERO)
            .build(),
        Err(ConfigError::ZeroDuration(_))
    ));
}

#[tokio::test]
async fn bad_keys_are_typed_errors() {
    let (a, _, _) = two_caches();
    for key in ["", "new\nline", &"k".repeat(4097)] {
        assert!(matches!(
            a.set(key, &1u8, None).await,
            Err(covet::cache::Error::InvalidKey { .. })
        ));
        assert!(matches!(
            a.get::<u8>(key).await,
            Err(covet::cache::Error::InvalidKey { .. })
        ));
    }
}

#[tokio::test]
async fn batch_counters_and_tags() {
    let (a, b, _) = two_caches();
    a.set_many(&[("m1", 1u32), ("m2", 2u32)], None)
        .await
        .unwrap();
    assert_eq!(
        a.get_many::<u32>(&["m1", "m2", "m3"]).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert_eq!(a.incr("hits", 5, None).await.unwrap(), 5);
    assert_eq!(a.incr("hits", 1, None).await.unwrap(), 6);
    assert!(matches!(
        a.incr("m1", 1, None).await,
        Err(covet::cache::Error::NotAnInteger { .. })
    ));
    a.set_tagged("t1", &1u8, None, &["grp"]).await.unwrap();
    a.set_tagged("t2", &2u8, None, &["grp", "other"])
        .await
        .unwrap();
    b.set_tagged("t1", &1u8, None, &["grp"]).await.unwrap();
    assert_eq!(a.invalidate_tag("grp").await.unwrap(), 2);
    assert_eq!(a.get::<u8>("t2").await.unwrap(), None);
    assert_eq!(
        b.get::<u8>("t1").await.unwrap(),
        Some(1),
        "tags are per namespace"
    );
}
