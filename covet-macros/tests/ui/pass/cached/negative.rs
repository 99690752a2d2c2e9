#![deny(warnings)]
// `cache_none`, `cache_err` (flags or their own TTL), `value_ttl`.
use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct NotFound;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Token {
    expires_in: u64,
}

fn token_ttl(token: &Token) -> Option<Duration> {
    Some(Duration::from_secs(token.expires_in))
}

#[covet::cached(ttl = 60, cache_none)]
async fn find(id: u64) -> Option<u64> {
    (id > 0).then_some(id)
}

#[covet::cached(ttl = 60, cache_none = "5s")]
async fn lookup(id: u64) -> Option<u64> {
    (id > 0).then_some(id)
}

#[covet::cached(ttl = 60, cache_err = "5s")]
async fn load(id: u64) -> Result<u64, NotFound> {
    if id == 0 { Err(NotFound) } else { Ok(id) }
}

#[covet::cached(ttl = 60, value_ttl = token_ttl)]
async fn token(user: u64) -> Result<Token, NotFound> {
    Ok(Token { expires_in: user })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(find(0).await, None);
    assert_eq!(lookup(2).await, Some(2));
    assert!(load(0).await.is_err());
    assert_eq!(token(30).await.unwrap().expires_in, 30);
}
