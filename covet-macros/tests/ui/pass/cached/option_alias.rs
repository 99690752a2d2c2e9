#![deny(warnings)]
// `option`: an `Option` written through an alias; only `Some` is stored.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

type Maybe<T> = Option<T>;

#[covet::cached(option, key = "find:{id}")]
async fn find(id: u32) -> Maybe<String> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("even {id}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(find(2).await.as_deref(), Some("even 2"));
    assert_eq!(find(2).await.as_deref(), Some("even 2"));
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(find(3).await, None);
    assert_eq!(find(3).await, None);
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
}
