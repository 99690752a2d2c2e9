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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(get_user(1), 1);
    assert_eq!(compile("a+").0, "a+");
    assert_eq!(compile_key("a+"), "re:a+");
    assert!(client("x".into()).await.is_some());
    assert!(client_invalidate("x".into()).await.unwrap());
    assert_eq!(get_user_clear().unwrap(), 1);
}
