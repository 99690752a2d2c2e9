#![deny(warnings)]
// A `Result` fn whose error is not `Send` (`Box<dyn Error>`) still has a
// `Send` future when its body's future is `Send`: `tokio::spawn` takes it.
// The error of a failed call never lives across an `.await` of the wrapper.
use std::error::Error;

#[covet::cached(key = "n:{n}")]
async fn parse(n: u64) -> Result<u64, Box<dyn Error>> {
    tokio::task::yield_now().await;
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n * 2)
}

/// The error is `Clone + Send + Sync`: it is handed to waiting callers.
#[covet::cached(key = "s:{n}")]
async fn shared(n: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    if n == 0 {
        return Err("zero".to_owned());
    }
    Ok(n)
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ok = tokio::spawn(async { parse(2).await.map_err(|e| e.to_string()) });
    assert_eq!(ok.await.unwrap(), Ok(4));
    let err = assert_send(parse(0)).await;
    assert!(err.is_err());
    assert_eq!(assert_send(shared(0)).await, Err("zero".to_owned()));
    let _ = assert_send(parse_refresh(3));
    let _ = assert_send(parse_invalidate(3));
}
