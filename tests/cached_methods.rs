//! `&self` methods: with `cache = self.cache`, and with the default cache.

use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::Cache;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

struct Repo {
    cache: Cache,
    loads: AtomicU32,
    tenant: String,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            cache: Cache::builder()
                .namespace(covet_test::unique_namespace("repo"))
                .build()
                .unwrap(),
            loads: AtomicU32::new(0),
            tenant: "acme".into(),
        }
    }

    #[covet::cached(ttl = 60, key = "profile:{self.tenant}:{id}", cache = self.cache)]
    async fn profile(&self, id: u64) -> Result<Profile, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(Profile {
            id,
            name: format!("{}-{id}", self.tenant),
        })
    }

    #[covet::cached(cache = self.cache)]
    async fn unkeyed(&self, a: u32, b: String) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("{a}{b}")
    }
}

#[tokio::test]
async fn method_with_cache_from_self() {
    let repo = Repo::new();
    let p = repo.profile(3).await.unwrap();
    assert_eq!(p.name, "acme-3");
    assert_eq!(repo.profile(3).await.unwrap(), p);
    assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
    assert_eq!(repo.profile_key(3), "profile:acme:3");
    assert_eq!(
        repo.cache.get::<Profile>("profile:acme:3").await.unwrap(),
        Some(p)
    );

    assert!(repo.profile_invalidate(3).await.unwrap());
    repo.profile(3).await.unwrap();
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn method_default_key_includes_arguments() {
    let repo = Repo::new();
    assert_eq!(repo.unkeyed(1, "x".into()).await, "1x");
    assert_eq!(repo.unkeyed(1, "x".into()).await, "1x");
    assert_eq!(repo.unkeyed(1, "y".into()).await, "1y");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
    assert_ne!(
        repo.unkeyed_key(1, "x".into()),
        repo.unkeyed_key(1, "y".into())
    );
}

struct Counter {
    id: u32,
}

static DEFAULT_LOADS: AtomicU32 = AtomicU32::new(0);

impl Counter {
    #[covet::cached(key = "counter-method:{self.id}:{step}")]
    async fn next(&self, step: u32) -> u32 {
        DEFAULT_LOADS.fetch_add(1, Ordering::SeqCst);
        self.id + step
    }
}

#[tokio::test]
async fn method_with_the_default_cache() {
    let c = Counter { id: 40 };
    assert_eq!(c.next(2).await, 42);
    assert_eq!(c.next(2).await, 42);
    assert_eq!(DEFAULT_LOADS.load(Ordering::SeqCst), 1);
    let stored: Option<u32> = covet::cache::default_cache()
        .get("counter-method:40:2")
        .await
        .unwrap();
    assert_eq!(stored, Some(42));
}
