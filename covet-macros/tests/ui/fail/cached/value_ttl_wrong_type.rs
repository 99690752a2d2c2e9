// `value_ttl` names a fn(&T) -> Option<Duration>.
use std::time::Duration;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Token {
    expires_in: u64,
}

fn lifetime(token: &Token) -> Duration {
    Duration::from_secs(token.expires_in)
}

#[covet::cached(ttl = 60, value_ttl = lifetime)]
async fn token(user: u64) -> Token {
    Token { expires_in: user }
}

fn main() {}
