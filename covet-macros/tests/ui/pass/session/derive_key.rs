#![deny(warnings)]
// `#[session(key = "...")]` names the session key.
use covet::session::SessionData;
use serde::{Deserialize, Serialize};

/// Documented, public, with other attributes around.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, SessionData)]
#[session(key = "cart")]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    /// Items.
    pub item_names: Vec<String>,
}

// A type with a key of its own, and options spread over two attributes.
#[derive(Default, Serialize, Deserialize, SessionData)]
#[session(key = "user.prefs")]
#[session(crate = "covet::session")]
struct Prefs {
    dark: bool,
}

fn main() {
    assert_eq!(Cart::KEY, "cart");
    assert_eq!(<Prefs as SessionData>::KEY, "user.prefs");
    let _ = (Cart::default().item_names, Prefs::default().dark);
}
