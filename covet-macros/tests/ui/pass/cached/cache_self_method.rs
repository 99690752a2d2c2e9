#![deny(warnings)]
// `cache = self.cache` on a `&self` method; `{self.field}` in the key.
use std::sync::atomic::{AtomicUsize, Ordering};

use covet::cache::Cache;

struct Repo {
    cache: Cache,
    tenant: &'static str,
    calls: AtomicUsize,
}

impl Repo {
    /// The name of a user.
    #[covet::cached(cache = self.cache, key = "{self.tenant}:user:{id}")]
    async fn user_name(&self, id: u64) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if id == 0 {
            Err("no user 0".to_owned())
        } else {
            Ok(format!("user {id}"))
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo {
        cache: Cache::memory(),
        tenant: "acme",
        calls: AtomicUsize::new(0),
    };
    assert_eq!(repo.user_name_key(5), "acme:user:5");
    assert_eq!(repo.user_name(5).await.unwrap(), "user 5");
    assert_eq!(repo.user_name(5).await.unwrap(), "user 5");
    assert_eq!(repo.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        repo.cache
            .get::<String>("acme:user:5")
            .await
            .unwrap()
            .as_deref(),
        Some("user 5")
    );

    // Errors are not cached.
    assert!(repo.user_name(0).await.is_err());
    assert!(repo.user_name(0).await.is_err());
    assert_eq!(repo.calls.load(Ordering::SeqCst), 3);

    assert_eq!(repo.user_name_refresh(5).await.unwrap(), "user 5");
    assert_eq!(repo.calls.load(Ordering::SeqCst), 4);
    assert!(repo.user_name_invalidate(5).await.unwrap());
    assert_eq!(repo.cache.get::<String>("acme:user:5").await.unwrap(), None);
}
