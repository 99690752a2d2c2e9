#![deny(warnings)]
// `ttl = CONST`: any expression of type `Duration` or whole seconds.
use std::time::Duration;

const USER_TTL: Duration = Duration::from_secs(300);
const REPORT_TTL_SECS: u64 = 60;

#[covet::cached(ttl = USER_TTL)]
async fn user(id: u64) -> u64 {
    id
}

#[covet::cached(ttl = REPORT_TTL_SECS * 5)]
async fn report(id: u64) -> u64 {
    id
}

#[covet::cached(ttl = Duration::from_millis(1500))]
async fn quick(id: u64) -> u64 {
    id
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(user(1).await + report(2).await + quick(3).await, 6);
}
