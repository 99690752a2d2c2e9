use covet::session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, SessionData)]
#[session(key = "")]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = (Cart::KEY, Cart::default().items);
}
