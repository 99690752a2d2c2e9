#![deny(warnings)]
// No `key`: the fn's path plus its encoded arguments. Two fns never share a
// key; an argument that fails to serialize bypasses the cache.
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde::{Serialize, Serializer};

static ADDS: AtomicUsize = AtomicUsize::new(0);
static FLAKY: AtomicU32 = AtomicU32::new(0);

#[covet::cached]
async fn add(a: u32, b: u32) -> u32 {
    ADDS.fetch_add(1, Ordering::SeqCst);
    a + b
}

#[covet::cached]
async fn sub(a: u32, b: u32) -> u32 {
    a.wrapping_sub(b)
}

#[covet::cached]
async fn nothing() -> u32 {
    7
}

struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot encode"))
    }
}

#[covet::cached]
async fn flaky(_tag: u8, value: Unencodable) -> u32 {
    let Unencodable = value;
    FLAKY.fetch_add(1, Ordering::SeqCst)
}

mod nested {
    #[covet::cached]
    pub async fn add(a: u32, b: u32) -> u32 {
        a + b + 100
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let key = add_key(1, 2);
    assert!(key.ends_with("::add:0102"), "{key}");
    assert_ne!(add_key(1, 2), sub_key(1, 2));
    assert_ne!(add_key(1, 2), nested::add_key(1, 2));
    assert!(nothing_key().ends_with("::nothing:"));

    assert_eq!(add(1, 2).await, 3);
    assert_eq!(add(1, 2).await, 3);
    assert_eq!(ADDS.load(Ordering::SeqCst), 1);
    assert_eq!(sub(5, 2).await, 3);
    assert_eq!(nested::add(1, 2).await, 103);
    assert_eq!(nothing().await, 7);

    // Bypass: the body runs every time, nothing is stored.
    assert_eq!(flaky(1, Unencodable).await, 0);
    assert_eq!(flaky(1, Unencodable).await, 1);
    assert!(!flaky_invalidate(1, Unencodable).await.unwrap());
    assert_eq!(flaky_refresh(1, Unencodable).await, 2);
}
