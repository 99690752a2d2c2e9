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
//!
//! A client-side store ([`SessionStore::is_client_side`], the session sealed
//! in its id) cannot keep an id across saves, merge concurrent saves or
//! revoke a value; the cases that depend on that branch on it and check
//! what such a store does instead: every `save`/`touch` returns a new id
//! holding the result, each concurrent save yields its own value, and
//! `delete` succeeds while the old value stays valid until its expiry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covet_session::store::{Changes, Data, Record};
use covet_session::{SaveOutcome, Session, SessionId, SessionStore};
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

/// Checks the id a `save` or `touch` of `id` returned: `id` itself for a
/// server-side store, a new value for a client-side one.
fn returned_id(s: &Store, id: &SessionId, returned: SessionId) -> SessionId {
    if s.is_client_side() {
        assert_ne!(&returned, id, "a client-side store seals a new value");
    } else {
        assert_eq!(&returned, id, "a server-side store keeps the id");
    }
    returned
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
    for text in ids {
        let id = if s.is_client_side() {
            s.parse_id(&text)
                .expect("a sealed id reads back from its cookie")
        } else {
            text.parse().unwrap()
        };
        s.delete(&id).await.unwrap();
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
    let saved = s.save(&id, &ch).await.unwrap().expect("saved");
    let first = id;
    let id = returned_id(&s, &first, saved);
    if s.is_client_side() {
        // The old value is not revoked: it still holds the old data.
        assert_eq!(
            s.load(&first).await.unwrap().unwrap().data,
            data(&[("a", json!(1)), ("b", json!(2)), ("c", json!(3))])
        );
    }
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(
        r.data,
        data(&[("a", json!(10)), ("c", json!(3)), ("d", json!({"x": true}))])
    );
    assert!(r.expires_at.duration_since(SystemTime::now()).unwrap() > Duration::from_secs(100));

    let mut ch = Changes::new(in_secs(60));
    ch.cleared = true;
    ch.set.insert("e".into(), json!(5));
    let saved = s.save(&id, &ch).await.unwrap().expect("saved");
    let id = returned_id(&s, &id, saved);
    assert_eq!(
        s.load(&id).await.unwrap().unwrap().data,
        data(&[("e", json!(5))])
    );
    s.delete(&id).await.unwrap();
}

/// Two saves of different keys running at once both keep their change
/// (server-side stores); a client-side store returns one value per save,
/// each holding its own change.
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
            s.save(&id, &ch).await.unwrap().expect("saved")
        }));
    }
    let mut saved = Vec::new();
    for t in tasks {
        saved.push(t.await.unwrap());
    }
    if s.is_client_side() {
        for (i, new) in saved.iter().enumerate() {
            assert_ne!(new, &id);
            let r = s.load(new).await.unwrap().unwrap();
            assert_eq!(
                r.data,
                data(&[("base", json!(0)), (format!("k{i}").as_str(), json!(i))])
            );
        }
        assert_eq!(
            s.load(&id).await.unwrap().unwrap().data,
            data(&[("base", json!(0))])
        );
        let a = Session::load(s.clone(), &id, &covet_session::SessionConfig::default())
            .await
            .unwrap()
            .unwrap();
        let b = Session::load(s.clone(), &id, &covet_session::SessionConfig::default())
            .await
            .unwrap()
            .unwrap();
        a.insert("from_a", 1).unwrap();
        b.insert("from_b", 2).unwrap();
        b.remove::<i32>("base").unwrap();
        let (ra, rb) = tokio::join!(a.save(), b.save());
        ra.unwrap();
        rb.unwrap();
        let (ia, ib) = (a.id().unwrap(), b.id().unwrap());
        assert!(ia != id && ib != id && ia != ib);
        assert_eq!(
            user_data(s.load(&ia).await.unwrap().unwrap().data),
            data(&[("base", json!(0)), ("from_a", json!(1))])
        );
        assert_eq!(
            user_data(s.load(&ib).await.unwrap().unwrap().data),
            data(&[("from_b", json!(2))])
        );
        return;
    }
    let r = s.load(&id).await.unwrap().unwrap();
    assert_eq!(r.data.len(), 17, "{:?}", r.data.keys());
    for i in 0..16 {
        assert_eq!(r.data[&format!("k{i}")], json!(i));
    }

    // Two handles loaded from the same session, changing different keys.
    let a = Session::load(s.clone(), &id, &covet_session::SessionConfig::default())
        .await
        .unwrap()
        .unwrap();
    let b = Session::load(s.clone(), &id, &covet_session::SessionConfig::default())
        .await
        .unwrap()
        .unwrap();
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
/// and delete quietly. A client-side store cannot revoke: `delete`
/// succeeds, and the value stays valid until its expiry (the layer's
/// removal cookie is what ends the session in the browser).
pub async fn delete_and_unknown_ids(s: Store) {
    let id = s
        .create(&Record::new(data(&[("a", json!(1))]), in_secs(60)))
        .await
        .unwrap();
    s.delete(&id).await.unwrap();
    if s.is_client_side() {
        assert!(s.load(&id).await.unwrap().is_some());
    } else {
        assert_eq!(s.load(&id).await.unwrap(), None);
    }
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
    let touched = s.touch(&id, in_secs(60)).await.unwrap().expect("touched");
    let first = id;
    let id = returned_id(&s, &first, touched);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    if s.is_client_side() {
        // The value from before the touch still carries the old expiry.
        assert_eq!(s.load(&first).await.unwrap(), None);
    }
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
    if s.is_client_side() {
        // Sealed ids have no fixed shape: a changed value may parse, but
        // then it does not open.
        let tampered = s
            .parse_id(&format!("{swapped}{}", &text[1..]))
            .expect("a sealed value of the same shape parses");
        assert_eq!(s.load(&tampered).await.unwrap(), None);
        for bad in [
            &text[..text.len() - 1],
            &format!("{text}x")[..],
            "",
            "../../etc/passwd",
            &text.replace(&text[..1], if first == b'+' { "/" } else { "+" }),
        ] {
            if let Some(parsed) = s.parse_id(bad) {
                assert_eq!(s.load(&parsed).await.unwrap(), None, "{bad:?} opened");
            }
        }
        assert!(s.parse_id("").is_none() && s.parse_id("../../etc/passwd").is_none());
        assert_ne!(id.storage_key(), text);
        assert!(s.load(&id).await.unwrap().is_some());
        s.delete(&id).await.unwrap();
        return;
    }
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

/// The data without covet's own fields (`__covet...`: creation time, user,
/// last write), which a `Session` adds.
pub fn user_data(mut data: Data) -> Data {
    data.retain(|k, _| !k.starts_with("__covet"));
    data
}

/// The `Session` handle over the store: new, save, load, change, clear.
pub async fn session_handle_round_trip(s: Store) {
    let session = Session::new(s.clone(), &covet_session::SessionConfig::default());
    session.insert("visits", 1u64).unwrap();
    session.save().await.unwrap();
    let id = session.id().unwrap();
    let again = Session::load(s.clone(), &id, &covet_session::SessionConfig::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.get::<u64>("visits").unwrap(), Some(1));
    again.insert("visits", 2u64).unwrap();
    again.save().await.unwrap();
    let current = returned_id(&s, &id, again.id().unwrap());
    assert_eq!(
        s.load(&current).await.unwrap().unwrap().data["visits"],
        json!(2)
    );
    again.clear();
    assert_eq!(again.save().await.unwrap(), SaveOutcome::Deleted);
    assert_eq!(again.id(), None);
    if s.is_client_side() {
        // Nothing to delete on the server; the layer sends a removal cookie.
        return;
    }
    assert_eq!(s.load(&id).await.unwrap(), None);
    assert!(
        Session::load(s, &id, &covet_session::SessionConfig::default())
            .await
            .unwrap()
            .is_none()
    );
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

/// A store that runs `cleanup` when the last handle to it is dropped (for
/// example dropping the test's own SQL table, or removing a temporary
/// directory). Every trait method delegates to the wrapped store.
pub struct WithCleanup<S> {
    store: S,
    cleanup: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl<S: SessionStore> WithCleanup<S> {
    /// Wraps `store`.
    pub fn new(store: S, cleanup: impl FnOnce() + Send + Sync + 'static) -> Self {
        WithCleanup {
            store,
            cleanup: Some(Box::new(cleanup)),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for WithCleanup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithCleanup")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S> Drop for WithCleanup<S> {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for WithCleanup<S> {
    async fn create(&self, record: &Record) -> covet_session::Result<SessionId> {
        self.store.create(record).await
    }

    async fn load(&self, id: &SessionId) -> covet_session::Result<Option<Record>> {
        self.store.load(id).await
    }

    async fn save(&self, id: &SessionId, c: &Changes) -> covet_session::Result<Option<SessionId>> {
        self.store.save(id, c).await
    }

    async fn delete(&self, id: &SessionId) -> covet_session::Result<()> {
        self.store.delete(id).await
    }

    async fn delete_expired(&self) -> covet_session::Result<u64> {
        self.store.delete_expired().await
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
    ) -> covet_session::Result<Option<SessionId>> {
        self.store.touch(id, expires_at).await
    }

    fn parse_id(&self, cookie_value: &str) -> Option<SessionId> {
        self.store.parse_id(cookie_value)
    }

    fn is_client_side(&self) -> bool {
        self.store.is_client_side()
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
    ) -> covet_session::Result<Vec<covet_session::SessionInfo>> {
        self.store.list_user_sessions(user_id).await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> covet_session::Result<u64> {
        self.store.delete_user_sessions(user_id).await
    }

    async fn delete_other_user_sessions(
        &self,
        user_id: &str,
        keep: &SessionId,
    ) -> covet_session::Result<u64> {
        self.store.delete_other_user_sessions(user_id, keep).await
    }

    fn use_cookie_name(&self, name: &str) {
        self.store.use_cookie_name(name);
    }
}
