#![deny(warnings)]
// `#[session_state(crate = "...")]`: the derives and serde are reached
// through that path.
extern crate covet as my_covet;

use my_covet::session::SessionData;

#[my_covet::session_state(crate = "my_covet::session", key = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<u32>,
}

// A root that re-exports the runtime, as a framework built on covet would.
mod root {
    pub use covet::session::{__private, SessionData};
}

#[covet::session_state(crate = "crate::root")]
#[derive(Default)]
struct Wrapped {
    n: u8,
}

fn main() {
    assert_eq!(Cart::KEY, "cart");
    assert_eq!(Wrapped::KEY, "wrapped");
    let _ = (Cart::default().items, Wrapped::default().n);
}
