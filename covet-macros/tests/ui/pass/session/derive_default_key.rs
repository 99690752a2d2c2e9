#![deny(warnings)]
// Without `key`, the key is the type's name in snake case.
use covet::session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, SessionData)]
struct ShoppingCart {
    items: Vec<String>,
}

#[derive(Default, Serialize, Deserialize, covet::SessionData)]
struct HTTPState {
    hits: u64,
}

#[derive(Default, Serialize, Deserialize, SessionData)]
struct Cart2;

fn main() {
    assert_eq!(ShoppingCart::KEY, "shopping_cart");
    assert_eq!(HTTPState::KEY, "http_state");
    assert_eq!(Cart2::KEY, "cart2");
    let _ = (ShoppingCart::default().items, HTTPState::default().hits);
}
