//! Return types: `Result` caches only `Ok`, `Option` only `Some`, anything
//! else as is; the `result`/`option` flags do the same through aliases.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::Cache;

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("ret"))
        .build()
        .unwrap()
});

#[derive(Debug, PartialEq)]
struct NotFound;

static RESULT_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "res:{id}", cache = CACHE)]
async fn find(id: u32) -> Result<String, NotFound> {
    let n = RESULT_CALLS.fetch_add(1, Ordering::SeqCst);
    // fails on the first call only
    if n == 0 {
        Err(NotFound)
    } else {
        Ok(format!("item {id}"))
    }
}

#[tokio::test]
async fn result_caches_only_ok() {
    assert_eq!(find(1).await, Err(NotFound));
    assert_eq!(
        CACHE.get::<String>(&find_key(1)).await.unwrap(),
        None,
        "an Err is not stored"
    );
    assert_eq!(find(1).await, Ok("item 1".to_owned()));
    assert_eq!(find(1).await, Ok("item 1".to_owned()));
    assert_eq!(RESULT_CALLS.load(Ordering::SeqCst), 2);
}

static OPTION_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "opt:{id}", cache = CACHE)]
async fn maybe(id: u32) -> Option<u32> {
    OPTION_CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id * 10)
}

#[tokio::test]
async fn option_caches_only_some() {
    assert_eq!(maybe(3).await, None);
    assert_eq!(maybe(3).await, None);
    assert_eq!(
        OPTION_CALLS.load(Ordering::SeqCst),
        2,
        "None is computed every time"
    );
    assert_eq!(maybe(4).await, Some(40));
    assert_eq!(maybe(4).await, Some(40));
    assert_eq!(OPTION_CALLS.load(Ordering::SeqCst), 3, "Some is cached");
}

static PLAIN_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "plain:{id}", cache = CACHE)]
async fn plain(id: u32) -> Vec<Option<u32>> {
    PLAIN_CALLS.fetch_add(1, Ordering::SeqCst);
    vec![None, Some(id)]
}

#[tokio::test]
async fn other_types_are_cached_as_is() {
    assert_eq!(plain(9).await, vec![None, Some(9)]);
    assert_eq!(plain(9).await, vec![None, Some(9)]);
    assert_eq!(PLAIN_CALLS.load(Ordering::SeqCst), 1);
}

type ApiResult<T> = Result<T, NotFound>;
type Maybe<T> = Option<T>;

static ALIAS_CALLS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(key = "alias-res:{id}", cache = CACHE, result)]
async fn aliased_result(id: u32) -> ApiResult<u32> {
    let n = ALIAS_CALLS.fetch_add(1, Ordering::SeqCst);
    if n == 0 { Err(NotFound) } else { Ok(id) }
}

#[covet::cached(key = "alias-opt:{id}", cache = CACHE, option)]
async fn aliased_option(id: u32) -> Maybe<u32> {
    ALIAS_CALLS.fetch_add(100, Ordering::SeqCst);
    (id > 0).then_some(id)
}

#[tokio::test]
async fn flags_work_through_aliases() {
    assert_eq!(aliased_result(7).await, Err(NotFound));
    assert_eq!(aliased_result(7).await, Ok(7));
    assert_eq!(aliased_result(7).await, Ok(7));
    assert_eq!(aliased_option(0).await, None);
    assert_eq!(aliased_option(0).await, None);
    assert_eq!(aliased_option(8).await, Some(8));
    assert_eq!(aliased_option(8).await, Some(8));
    // 2 result bodies + 3 option bodies (None twice, Some once)
    assert_eq!(ALIAS_CALLS.load(Ordering::SeqCst), 2 + 300);
}
