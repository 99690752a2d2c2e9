#![deny(warnings)]
// `lock`: cross-process single-flight through a lease in the shared backend.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[covet::cached(ttl = 60, key = "report:{day}", lock)]
async fn report(day: u32) -> Result<String, std::io::Error> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("day {day}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(report(3).await.unwrap(), "day 3");
    assert_eq!(report(3).await.unwrap(), "day 3");
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(report_refresh(3).await.unwrap(), "day 3");
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
}
