#![deny(warnings)]
// Nested types, `Option`, `Vec`, maps, enums as fields, and serde's
// attributes on the struct and its fields.
use std::collections::BTreeMap;
use std::sync::Arc;

use covet::session::{MemoryStore, Session, SessionData, SessionState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Size {
    Small,
    Large { grams: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    size: Size,
    note: Option<String>,
}

#[covet::session_state(key = "checkout")]
#[derive(Default, Debug)]
#[serde(rename_all = "camelCase")]
struct Checkout {
    items: Vec<Item>,
    coupon_code: Option<String>,
    #[serde(default)]
    quantities: BTreeMap<String, u32>,
    addresses: Vec<Option<(String, u16)>>,
}

fn main() {
    assert_eq!(Checkout::KEY, "checkout");
    let session = Session::new(Arc::new(MemoryStore::new()), &covet::session::SessionConfig::default());
    let item = Item {
        name: "tea".to_owned(),
        size: Size::Large { grams: 500 },
        note: None,
    };
    {
        let mut checkout = SessionState::<Checkout>::load(&session).unwrap();
        checkout.items.push(item.clone());
        checkout.items.push(Item {
            name: "cup".to_owned(),
            size: Size::Small,
            note: Some("blue".to_owned()),
        });
        checkout.coupon_code = Some("TEN".to_owned());
        checkout.quantities.insert("tea".to_owned(), 2);
        checkout.addresses.push(None);
    }
    let raw = session.get_value("checkout").unwrap().unwrap();
    assert!(raw.get("couponCode").is_some());
    let checkout = SessionState::<Checkout>::load(&session).unwrap();
    assert_eq!(checkout.items[0], item);
    assert_eq!(checkout.items[1].size, Size::Small);
    assert_eq!(checkout.quantities["tea"], 2);
    assert_eq!(checkout.addresses, [None]);
}
