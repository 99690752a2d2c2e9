#![deny(warnings)]
// `crate = "path"`: the generated code reaches the runtime through that path.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

extern crate covet as my_covet;

static CALLS: AtomicUsize = AtomicUsize::new(0);
static THROUGH_ROOT: AtomicBool = AtomicBool::new(false);

#[my_covet::cached(crate = "my_covet", key = "a:{x}")]
async fn renamed(x: u8) -> u8 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x
}

// A root that wraps the runtime, to observe that it is the one used.
mod root {
    pub mod cache {
        pub use covet::cache::*;
    }
    pub mod __private {
        pub use covet::__private::*;
        pub fn default_cache() -> &'static covet::cache::Cache {
            super::super::THROUGH_ROOT.store(true, std::sync::atomic::Ordering::SeqCst);
            covet::__private::default_cache()
        }
    }
}

#[covet::cached(crate = "crate::root", key = "b:{x}")]
async fn wrapped(x: u8) -> u8 {
    x
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(renamed(1).await, 1);
    assert_eq!(renamed(1).await, 1);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert!(!THROUGH_ROOT.load(Ordering::SeqCst));
    assert_eq!(wrapped(2).await, 2);
    assert!(THROUGH_ROOT.load(Ordering::SeqCst));
}
