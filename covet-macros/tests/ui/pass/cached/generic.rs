#![deny(warnings)]
// Generic fns: type and const parameters, where clauses. The default key
// names the type arguments, so `f::<u8>(5)` and `f::<u16>(5)` differ even
// though their arguments encode the same.
use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[covet::cached]
async fn describe<T>(value: T) -> String
where
    T: Serialize + Display,
{
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{value}:{}", std::any::type_name::<T>())
}

#[covet::cached(key = "rep:{text}")]
async fn repeat<const N: usize>(text: &str) -> String {
    text.repeat(N)
}

// A type parameter that only appears in the return type.
#[covet::cached(key = "default:{tag}")]
async fn make_default<
    T: Default + serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
>(
    tag: &str,
) -> T {
    assert!(!tag.is_empty());
    T::default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(describe(5u8).await, "5:u8");
    assert_eq!(describe(5u16).await, "5:u16");
    assert_eq!(describe(5u8).await, "5:u8");
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    assert_ne!(describe_key(5u8), describe_key(5u16));
    assert!(describe_key(5u8).contains("::describe::<u8>:"));

    assert_eq!(repeat::<3>("ab").await, "ababab");
    assert_eq!(repeat_key::<3>("ab"), "rep:ab");

    assert_eq!(make_default::<u32>("zero").await, 0);
    assert_eq!(make_default::<u32>("zero").await, 0);
}
