//! Without `cache = ...`, `#[cached]` uses the process-wide default cache,
//! which `set_default` replaces. One test: the default is process state.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::{Cache, MemoryBackend, default_cache, set_default};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: String,
}

#[derive(Debug)]
struct DbError;

static LOADS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(ttl = 300, key = "user:{user_id}")]
async fn get_user(user_id: u64) -> Result<User, DbError> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    Ok(User {
        name: format!("user{user_id}"),
    })
}

#[tokio::test]
async fn default_cache_is_used_and_replaceable() {
    // before set_default: an in-memory cache in namespace "covet"
    assert_eq!(default_cache().namespace(), "covet");
    get_user(1).await.unwrap();
    assert_eq!(
        default_cache()
            .get::<User>("user:1")
            .await
            .unwrap()
            .unwrap()
            .name,
        "user1"
    );

    let cache = Cache::builder()
        .backend(
            MemoryBackend::builder()
                .max_capacity_bytes(64 << 20)
                .build(),
        )
        .namespace(covet_test::unique_namespace("myapp"))
        .default_ttl(Duration::from_secs(300))
        .build()
        .unwrap();
    set_default(cache.clone());
    assert_eq!(default_cache().namespace(), cache.namespace());

    cache
        .set(
            "user:1",
            &User {
                name: "Alice".into(),
            },
            None,
        )
        .await
        .unwrap();
    let u: Option<User> = cache.get("user:1").await.unwrap();
    assert_eq!(u.unwrap().name, "Alice");
    assert_eq!(
        get_user(1).await.unwrap().name,
        "Alice",
        "served from the new default"
    );
    let loads = LOADS.load(Ordering::SeqCst);
    assert_eq!(get_user(7).await.unwrap().name, "user7");
    assert_eq!(get_user(7).await.unwrap().name, "user7");
    assert_eq!(LOADS.load(Ordering::SeqCst), loads + 1);
    assert!(get_user_invalidate(7).await.unwrap());
    assert_eq!(get_user_key(7), "user:7");
    assert_eq!(cache.delete_pattern("user:*").await.unwrap(), 1);
    let s = cache.stats();
    assert!(s.hits >= 2 && s.misses >= 1 && s.sets >= 2, "{s:?}");

    // other threads see the new default too
    let ns = cache.namespace().to_owned();
    let seen = std::thread::spawn(|| default_cache().namespace().to_owned())
        .join()
        .unwrap();
    assert_eq!(seen, ns);
}
