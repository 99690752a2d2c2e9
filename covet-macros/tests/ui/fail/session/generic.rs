use covet::session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, SessionData)]
struct Cart<T> {
    items: Vec<T>,
}

fn main() {
    let _ = Cart::<u8>::default().items;
}
