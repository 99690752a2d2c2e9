//! `ttl = CONST` (any expression of type `Duration` or whole seconds),
//! `value_ttl` (each value its own TTL) and `jitter` (expiries spread).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use covet::cache::{Cache, KeyTtl};
use serde::{Deserialize, Serialize};

static CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("ttl-options"))
        .build()
        .expect("cache")
});

const USER_TTL: Duration = Duration::from_secs(300);
const REPORT_SECS: u64 = 40;

#[covet::cached(cache = CACHE, key = "const:{id}", ttl = USER_TTL)]
async fn with_const(id: u64) -> u64 {
    id
}

#[covet::cached(cache = CACHE, key = "expr:{id}", ttl = REPORT_SECS * 3)]
async fn with_expr(id: u64) -> u64 {
    id
}

#[covet::cached(cache = CACHE, key = "zero:{id}", ttl = Duration::ZERO)]
async fn with_zero(id: u64) -> u64 {
    ZERO_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}
static ZERO_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Token {
    value: String,
    expires_in: Option<u64>,
}

fn token_ttl(token: &Token) -> Option<Duration> {
    token.expires_in.map(Duration::from_millis)
}

static TOKEN_RUNS: AtomicU32 = AtomicU32::new(0);

#[covet::cached(cache = CACHE, key = "token:{user}", ttl = 60, value_ttl = token_ttl)]
async fn token(user: u64, expires_in: Option<u64>) -> Result<Token, String> {
    TOKEN_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(Token {
        value: format!("t{user}"),
        expires_in,
    })
}

#[covet::cached(cache = CACHE, key = "jitter:{id}", ttl = 100, jitter = "20%")]
async fn jittered(id: u64) -> u64 {
    id
}

async fn ttl_of(key: &str) -> Duration {
    match CACHE.ttl(key).await.expect("ttl") {
        KeyTtl::Expires(d) => d,
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn ttl_takes_constants_and_expressions() {
    with_const(1).await;
    let ttl = ttl_of(&with_const_key(1)).await;
    assert!(ttl > Duration::from_secs(290) && ttl <= USER_TTL, "{ttl:?}");
    with_expr(1).await;
    let ttl = ttl_of(&with_expr_key(1)).await;
    assert!(
        ttl > Duration::from_secs(110) && ttl <= Duration::from_secs(120),
        "{ttl:?}"
    );
    // Zero stores nothing.
    with_zero(1).await;
    with_zero(1).await;
    assert_eq!(ZERO_RUNS.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn value_ttl_gives_each_value_its_own_life() {
    // A token that expires in 300 ms is cached for 300 ms, not 60 s.
    token(1, Some(300)).await.unwrap();
    let ttl = ttl_of(&token_key(1, None)).await;
    assert!(ttl <= Duration::from_millis(300), "{ttl:?}");
    token(1, Some(300)).await.unwrap();
    assert_eq!(TOKEN_RUNS.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    token(1, Some(300)).await.unwrap();
    assert_eq!(TOKEN_RUNS.load(Ordering::SeqCst), 2);
    // `None` from `value_ttl`: the fn's `ttl`.
    token(2, None).await.unwrap();
    let ttl = ttl_of(&token_key(2, None)).await;
    assert!(ttl > Duration::from_secs(55), "{ttl:?}");
}

#[tokio::test]
async fn jitter_spreads_expiries_below_the_ttl() {
    let mut ttls = Vec::new();
    for id in 0..50 {
        jittered(id).await;
        ttls.push(ttl_of(&jittered_key(id)).await);
    }
    let min = *ttls.iter().min().unwrap();
    let max = *ttls.iter().max().unwrap();
    assert!(
        min >= Duration::from_secs(79),
        "at most 20% shorter: {min:?}"
    );
    assert!(max <= Duration::from_secs(100), "never longer: {max:?}");
    assert!(
        max - min > Duration::from_secs(5),
        "spread: {min:?}..{max:?}"
    );
}
