//! Generated companions: `<fn>_key`, `<fn>_invalidate`, `<fn>_refresh`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::Cache;

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("comp"))
        .build()
        .unwrap()
});

static VERSION: AtomicU32 = AtomicU32::new(0);

/// The version of `name`, recomputed on every miss.
#[covet::cached(ttl = 60, key = "version:{name}", cache = CACHE)]
pub async fn version(name: &str) -> Result<String, std::io::Error> {
    let v = VERSION.fetch_add(1, Ordering::SeqCst);
    Ok(format!("{name}-v{v}"))
}

mod inner {
    #[covet::cached(key = "private:{x}", cache = super::CACHE)]
    pub(crate) async fn visible_in_crate(x: u8) -> u8 {
        x
    }
}

#[tokio::test]
async fn key_invalidate_and_refresh() {
    assert_eq!(version_key("app"), "version:app");
    assert_eq!(version("app").await.unwrap(), "app-v0");
    assert_eq!(version("app").await.unwrap(), "app-v0");

    // refresh recomputes and stores even though an entry exists
    assert_eq!(version_refresh("app").await.unwrap(), "app-v1");
    assert_eq!(version("app").await.unwrap(), "app-v1");
    assert_eq!(
        CACHE.get::<String>("version:app").await.unwrap().as_deref(),
        Some("app-v1")
    );

    assert!(version_invalidate("app").await.unwrap());
    assert!(!version_invalidate("app").await.unwrap(), "already gone");
    assert_eq!(version("app").await.unwrap(), "app-v2");
}

#[tokio::test]
async fn companions_share_the_fn_visibility() {
    assert_eq!(inner::visible_in_crate_key(3), "private:3");
    assert_eq!(inner::visible_in_crate(3).await, 3);
    assert!(inner::visible_in_crate_invalidate(3).await.unwrap());
    assert_eq!(inner::visible_in_crate_refresh(4).await, 4);
}
