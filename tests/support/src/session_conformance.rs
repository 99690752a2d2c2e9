//! The conformance suite every [`SessionStore`] passes, written once.
//!
//! Each case is an async fn taking the store under test; cases only touch
//! sessions they create (ids are random), so they run in parallel against
//! one shared server.
//! [`session_store_conformance!`](crate::session_store_conformance) turns
//! the list into one `#[tokio::test]` per case:
//!
//! ```ignore
//! covet_test::session_store_conformance!(memory, async {
//!     Some(std::sync::Arc::new(MemoryStore::new()) as std::sync::Arc<dyn SessionStore>)
//! });
//! ```
//!
//! The expression yields `Option<Arc<dyn SessionStore>>`; `None` skips the
//! cases (use [`require`](crate::require), which panics under CI instead).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covet_session::store::{Changes, Data, Record};
use covet_session::{Session, SessionId, SessionStore};
use serde_json::json;

/// The store under test.
pub type Store = Arc<dyn SessionStore>;

/// Every case, in the order the macro lists them.
pub const CASES: &[&str] = &[
    "create_and_load",
    "create_gives_unique_ids",
    "save_applies_only_the_changes",
    "concurrent_saves_of_different_keys_merge",
    "delete_and_unknown_ids",
    "expiry",
    "touch_extends_expiry",
    "tampered_ids_find_nothing",
    "session_handle_round_trip",
];

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

fn data(pairs: &[(&str, serde_json::Value)]) -> Data {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// `create` stores the record; `load` returns it.
pub async fn create_and_load(s: Store) {
    let d = data(&[
        ("user", json!(7)),
        ("name", json!("ada")),
        ("tags", json!(["a", "b"])),
    ]);
    let id = s
        .create(&Record::new(d.clone(), in_secs(60)))
        .await
        .unwrap();
    let r = s.load(&id).await.unwrap().expect("created session");
    assert_eq!(r.data, d);
    let left = r.expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(61),
        "{left:?}"
    );
    let empty = s
        .create(&Record::new(Data::new(), in_secs(60)))
        .await
        .unwrap();
    assert_eq!(s.load(&empty).await.unwrap().unwrap().data, Data::new());
    s.delete(&id).await.unwrap();
    s.delete(&empty).await.unwrap();
}

/// Every `create` returns a different id.
pub async fn create_gives_unique_ids(s: Store) {
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let id = s
            .create(&Record::new(data(&[("n", json!(1))]), in_secs(60)))
            .await
            .unwrap();
        assert!(ids.insert(id.expose().to_owned()));
    }
    for id in ids {
        s.delete(&id.parse().unwrap()).await.unwrap();
    }
}

/// `save` sets, removes and clears exactly what `Changes` says.
pub async fn save_applies_only_the_changes(s: Store) {
    let id = s
        .create(&Record::new(
            data(&[("a", json!(1)), ("b", json!(2)), ("c", json!(3))]),
            in_secs(60),
        ))
        .await
        .unwrap();
    let mut ch = Changes::new(in_secs(120));
    ch.set.insert("a".into(), json!(10));
    ch.set.insert("d".into(), json!({"x": true}));
    ch.removed.insert("b".into());
    assert!(s.save(&id, &ch).await.unwrap().is_some());
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(
        r.data,
        data(&[("a", json!(10)), ("c", json!(3)), ("d", json!({"x": true}))])
    );
    assert!(r.expires_at.duration_since(SystemTime::now()).unwrap() > Duration::from_secs(100));

    let mut ch = Changes::new(in_secs(60));
    ch.cleared = true;
    ch.set.insert("e".into(), json!(5));
    assert!(s.save(&id, &ch).await.unwrap().is_some());
    assert_eq!(
        s.load(&id).await.unwrap().unwrap().data,
        data(&[("e", json!(5))])
    );
    s.delete(&id).await.unwrap();
}

/// Two saves of different keys running at once both keep their change.
pub async fn concurrent_saves_of_different_keys_merge(s: Store) {
    let id = s
        .create(&Record::new(data(&[("base", json!(0))]), in_secs(60)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (s, id) = (s.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut ch = Changes::new(in_secs(60));
            ch.set.insert(format!("k{i}"), json!(i));
            assert!(s.save(&id, &ch).await.unwrap().is_some());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(r.data.len(), 17, "{:?}", r.data.keys());
    for i in 0..16 {
        assert_eq!(r.data[&format!("k{i}")], json!(i));
    }

    // Two handles loaded from the same session, changing different keys.
    let a = Session::load(s.clone(), &id).await.unwrap().unwrap();
    let b = Session::load(s.clone(), &id).await.unwrap().unwrap();
    a.insert("from_a", 1).unwrap();
    b.insert("from_b", 2).unwrap();
    b.remove::<i32>("k0").unwrap();
    let (ra, rb) = tokio::join!(a.save(), b.save());
    ra.unwrap();
    rb.unwrap();
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(r.data["from_a"], json!(1));
    assert_eq!(r.data["from_b"], json!(2));
    assert!(!r.data.contains_key("k0"));
    s.delete(&id).await.unwrap();
}

/// `delete` removes; unknown ids load as `None`, save and touch as `false`,
/// and delete quietly.
pub async fn delete_and_unknown_ids(s: Store) {
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), in_secs(60)))
        .await
        .unwrap();
    s.delete(&id).await.unwrap();
    assert_eq!(s.load(&id).await.unwrap(), None);
    s.delete(&id).await.unwrap();

    let unknown = SessionId::generate().unwrap();
    assert_eq!(s.load(&unknown).await.unwrap(), None);
    let mut ch = Changes::new(in_secs(60));
    ch.set.insert("a".into(), json!(1));
    assert!(s.save(&unknown, &ch).await.unwrap().is_none());
    assert_eq!(
        s.load(&unknown).await.unwrap(),
        None,
        "save must not create"
    );
    assert!(s.touch(&unknown, in_secs(60)).await.unwrap().is_none());
    assert_eq!(
        s.load(&unknown).await.unwrap(),
        None,
        "touch must not create"
    );
    s.delete(&unknown).await.unwrap();
}

/// Sessions past their expiry are never returned, saved or touched, and
/// `delete_expired` runs without error.
pub async fn expiry(s: Store) {
    let soon = SystemTime::now() + Duration::from_millis(1200);
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), soon))
        .await
        .unwrap();
    let later = s
        .create(&Record::new(data(&[("b", json!(2))]), in_secs(60)))
        .await
        .unwrap();
    assert!(s.load(&id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.load(&id).await.unwrap(), None);
    let mut ch = Changes::new(in_secs(60));
    ch.set.insert("c".into(), json!(3));
    assert!(s.save(&id, &ch).await.unwrap().is_none());
    assert!(s.touch(&id, in_secs(60)).await.unwrap().is_none());
    assert_eq!(s.load(&id).await.unwrap(), None);
    s.delete_expired().await.unwrap();
    assert_eq!(s.load(&id).await.unwrap(), None);
    assert!(
        s.load(&later).await.unwrap().is_some(),
        "live sessions stay"
    );
    s.delete(&later).await.unwrap();
}

/// `touch` moves the expiry and keeps the data.
pub async fn touch_extends_expiry(s: Store) {
    let soon = SystemTime::now() + Duration::from_millis(1200);
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), soon))
        .await
        .unwrap();
    assert!(s.touch(&id, in_secs(60)).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = s
        .load(&id)
        .await
        .unwrap()
        .expect("touched session lives on");
    assert_eq!(r.data, data(&[("a", json!(1))]));
    assert!(r.expires_at.duration_since(SystemTime::now()).unwrap() > Duration::from_secs(50));
    s.delete(&id).await.unwrap();
}

/// An id with one character changed finds nothing, and malformed ids do not
/// parse.
pub async fn tampered_ids_find_nothing(s: Store) {
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), in_secs(60)))
        .await
        .unwrap();
    let text = id.expose();
    let first = text.as_bytes()[0];
    let swapped = if first == b'A' { 'B' } else { 'A' };
    let tampered: SessionId = format!("{swapped}{}", &text[1..]).parse().unwrap();
    assert_eq!(s.load(&tampered).await.unwrap(), None);
    for bad in [
        &text[..42],
        &format!("{text}x")[..],
        "",
        "../../etc/passwd",
        &text.replace(&text[..1], "+"),
    ] {
        assert!(bad.parse::<SessionId>().is_err(), "{bad:?} parsed");
    }
    // The store keys by the hash: the raw id is not a key of another session.
    assert_ne!(id.storage_key(), text);
    assert!(s.load(&id).await.unwrap().is_some());
    s.delete(&id).await.unwrap();
}

/// The `Session` handle over the store: new, save, load, change, clear.
pub async fn session_handle_round_trip(s: Store) {
    let session = Session::new(s.clone());
    session.insert("visits", 1u64).unwrap();
    session.save().await.unwrap();
    let id = session.id().unwrap();
    let again = Session::load(s.clone(), &id).await.unwrap().unwrap();
    assert_eq!(again.get::<u64>("visits").unwrap(), Some(1));
    again.insert("visits", 2u64).unwrap();
    again.save().await.unwrap();
    assert_eq!(s.load(&id).await.unwrap().unwrap().data["visits"], json!(2));
    again.clear();
    again.save().await.unwrap();
    assert_eq!(s.load(&id).await.unwrap(), None);
    assert!(Session::load(s, &id).await.unwrap().is_none());
}

/// One `#[tokio::test]` per case of [`session_conformance`](crate::session_conformance)
/// against the store `$make` yields (`Option<Arc<dyn SessionStore>>`; `None`
/// skips).
#[macro_export]
macro_rules! session_store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn __covet_store() -> ::std::option::Option<$crate::session_conformance::Store> {
                $make.await
            }

            $crate::session_store_conformance!(@cases
                create_and_load,
                create_gives_unique_ids,
                save_applies_only_the_changes,
                concurrent_saves_of_different_keys_merge,
                delete_and_unknown_ids,
                expiry,
                touch_extends_expiry,
                tampered_ids_find_nothing,
                session_handle_round_trip
            );
        }
    };
    (@cases $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::std::option::Option::Some(store) = __covet_store().await {
                    $crate::session_conformance::$case(store).await;
                }
            }
        )*
    };
}
