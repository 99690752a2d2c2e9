#![deny(warnings)]
// `crate = "path"`: the impl names the trait through that path.
use serde::{Deserialize, Serialize};

extern crate covet as my_covet;

#[derive(Default, Serialize, Deserialize, my_covet::session::SessionData)]
#[session(crate = "my_covet::session", key = "a")]
struct A {
    n: u8,
}

// A root that re-exports the runtime, as a framework built on covet would.
mod root {
    pub use covet::session::{__private, SessionData};
}

#[derive(Default, Serialize, Deserialize, covet::SessionData)]
#[session(crate = "crate::root")]
struct B {
    n: u8,
}

fn main() {
    use covet::session::SessionData;
    assert_eq!(A::KEY, "a");
    assert_eq!(B::KEY, "b");
    let _ = (A::default().n, B::default().n);
}
