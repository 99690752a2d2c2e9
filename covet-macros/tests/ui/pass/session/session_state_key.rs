#![deny(warnings)]
// `#[session_state(key = "...")]`: serde's derives come through covet (this
// file imports no serde), and the value round-trips through a session.
use std::sync::Arc;

use covet::session::{MemoryStore, Session, SessionData, SessionState};

#[covet::session_state(key = "cart")]
#[derive(Default, Debug, PartialEq)]
struct Cart {
    items: Vec<String>,
}

fn main() {
    assert_eq!(Cart::KEY, "cart");
    let session = Session::new(Arc::new(MemoryStore::new()), &covet::session::SessionConfig::default());
    {
        let mut cart = SessionState::<Cart>::load(&session).unwrap();
        cart.items.push("apple".to_owned());
    }
    let stored: Cart = session.get("cart").unwrap().unwrap();
    assert_eq!(stored.items, ["apple"]);
}
