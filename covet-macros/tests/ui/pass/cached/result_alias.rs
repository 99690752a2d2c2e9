#![deny(warnings)]
// `result`: a `Result` written through an alias; only `Ok` is stored.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

type Lookup = Result<String, std::num::ParseIntError>;

#[covet::cached(result, key = "parse:{text}")]
async fn parse(text: &str) -> Lookup {
    CALLS.fetch_add(1, Ordering::SeqCst);
    text.parse::<u64>().map(|n| format!("n={n}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(parse("12").await.unwrap(), "n=12");
    assert_eq!(parse("12").await.unwrap(), "n=12");
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(parse("x").await.is_err());
    assert!(parse("x").await.is_err());
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
}
