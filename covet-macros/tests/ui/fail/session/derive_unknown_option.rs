use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, covet::SessionData)]
#[session(ttl = 60)]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart::default().items;
}
