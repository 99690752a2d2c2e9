#![deny(warnings)]
// `#[session_state]` without options: the key is the type's name in snake
// case.
use covet::session::SessionData;

/// A documented public type.
#[covet::session_state]
#[derive(Default)]
pub struct ShoppingCart {
    /// Items.
    pub items: Vec<String>,
}

#[covet::session_state()]
#[derive(Default)]
struct Visits(u64);

#[covet::session_state]
#[derive(Default)]
struct Seen;

fn main() {
    assert_eq!(ShoppingCart::KEY, "shopping_cart");
    assert_eq!(Visits::KEY, "visits");
    assert_eq!(Seen::KEY, "seen");
    let _ = (ShoppingCart::default().items, Visits::default().0, Seen);
}
