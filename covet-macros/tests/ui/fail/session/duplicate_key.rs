use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, covet::SessionData)]
#[session(key = "a")]
#[session(key = "b")]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart::default().items;
}
