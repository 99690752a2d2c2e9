#![deny(warnings)]
// A sync fn is memoized in process (implicitly `local`); so is an async fn
// with `local`, whose values need no serde.
use std::sync::Arc;

#[covet::cached(ttl = 60)]
fn get_user(user_id: u64) -> u64 {
    user_id
}

struct Regex(String);

#[covet::cached(local, max_entries = 100, key = "re:{pattern}")]
fn compile(pattern: &str) -> Arc<Regex> {
    Arc::new(Regex(pattern.to_owned()))
}

#[covet::cached(local, ttl = "5m")]
async fn client(name: String) -> Option<Arc<Regex>> {
    Some(Arc::new(Regex(name)))
}

// Every option that needs no backend, on both kinds of fn.
#[derive(Clone)]
struct Page(String);

// With `cache_err`, the stored value is the whole `Result`.
fn page_weight(page: &Result<Page, String>) -> usize {
    page.as_ref().map_or(0, |p| p.0.len())
}

fn page_ttl(page: &Page) -> Option<std::time::Duration> {
    (page.0.len() > 10).then(|| std::time::Duration::from_secs(5))
}

#[covet::cached(
    ttl = "1m",
    max_bytes = "1 MiB",
    weigher = page_weight,
    value_ttl = page_ttl,
    jitter = "10%",
    stale_while_revalidate = "30s",
    stale_if_error = "5m",
    refresh_ahead = "10s",
    cache_err = "5s"
)]
fn render(path: String) -> Result<Page, String> {
    Ok(Page(path))
}

#[covet::cached(local, ttl = "1m", max_bytes = 4096, stale_while_revalidate = "30s")]
async fn fetch(path: String) -> String {
    path
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(get_user(1), 1);
    assert_eq!(render("/".into()).map(|p| p.0), Ok("/".to_owned()));
    assert_eq!(fetch("/a".into()).await, "/a");
    assert_eq!(compile("a+").0, "a+");
    assert_eq!(compile_key("a+"), "re:a+");
    assert!(client("x".into()).await.is_some());
    assert!(client_invalidate("x".into()).await.unwrap());
    assert_eq!(get_user_clear().unwrap(), 1);
}
