//! The session defects found in review, each reproduced over real HTTP
//! with an API older releases had too (so each of these failed before the
//! fix): a logout undone by a slow request, `cache.clear()` logging
//! everyone out, a manual save losing its cookie, a session page leaking
//! through the HTTP cache, a corrupt record answering 500 forever, an app
//! key corrupting its own Redis record, and a planted cookie winning.

#![cfg(all(feature = "axum", feature = "redis"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use covet::cache::Cache;
use covet::session::{Error, RedisStore, Session, SessionConfig, SessionLayer, SessionStore};
use covet_test::http::{TestServer, cookie_value};
use covet_test::{RedisProcess, Server, require, unique_namespace};

#[derive(Clone, Default)]
struct Gate {
    entered: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> impl IntoResponse {
    match session.insert(&k, v) {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn read(session: Session, Path(k): Path<String>) -> Result<String, Error> {
    Ok(session.get::<String>(&k)?.unwrap_or_else(|| "-".into()))
}

async fn logout(session: Session) -> &'static str {
    session.clear();
    "bye"
}

async fn slow(State(gate): State<Gate>, session: Session) -> Result<&'static str, Error> {
    gate.entered.fetch_add(1, Ordering::SeqCst);
    gate.release.notified().await;
    session.insert("last_seen", "late")?;
    Ok("slow done")
}

async fn manual(session: Session) -> Result<&'static str, Error> {
    session.insert("theme", "dark")?;
    session.save().await?;
    Ok("saved")
}

fn app(store: Arc<dyn SessionStore>, gate: Gate) -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/get/{k}", get(read))
        .route("/logout", post(logout))
        .route("/slow", post(slow))
        .route("/manual", post(manual))
        .layer(
            SessionLayer::from_shared(store)
                .with_config(SessionConfig::default().with_secure(false)),
        )
        .with_state(gate)
}

async fn redis_store() -> Option<RedisStore> {
    let url = require(Server::Redis)?;
    Some(
        RedisStore::builder()
            .key_prefix(format!("{}:", unique_namespace("covet-defects")))
            .connect(&url)
            .await
            .expect("connecting to Redis"),
    )
}

struct Reply {
    status: u16,
    cookie: Option<String>,
    body: String,
}

async fn send(server: &TestServer, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, server.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("request");
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| cookie_value(v.to_str().ok()?, "id").map(str::to_owned));
    Reply {
        status: resp.status().as_u16(),
        cookie,
        body: resp.text().await.expect("body"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_ends_after_logout_does_not_log_back_in() {
    let Some(store) = redis_store().await else {
        return;
    };
    let gate = Gate::default();
    let server = Arc::new(TestServer::start(app(Arc::new(store), gate.clone())).await);
    let login = send(&server, "POST", "/set/user/alice", None).await;
    let cookie = format!("id={}", login.cookie.expect("a session"));
    let slow = {
        let (server, cookie) = (server.clone(), cookie.clone());
        tokio::spawn(async move { send(&server, "POST", "/slow", Some(&cookie)).await })
    };
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out = send(&server, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(out.cookie.as_deref(), Some(""), "logout removes the cookie");
    gate.release.notify_one();
    let late = slow.await.expect("task");
    assert_eq!(late.body, "slow done");
    if let Some(v) = late.cookie.filter(|v| !v.is_empty()) {
        let who = send(&server, "GET", "/get/user", Some(&format!("id={v}"))).await;
        panic!(
            "the slow request re-created the session: it is logged in as {}",
            who.body
        );
    }
    assert_eq!(
        send(&server, "GET", "/get/user", Some(&cookie)).await.body,
        "-"
    );
}

#[tokio::test]
async fn clearing_a_cache_with_default_settings_keeps_sessions_on_the_same_redis() {
    // A private server: the defaults on both sides share its whole key space.
    let redis = match RedisProcess::start() {
        Ok(r) => r,
        Err(e) if !covet_test::in_ci() => {
            eprintln!("no redis-server to start ({e}); skipping");
            return;
        }
        Err(e) => panic!("starting redis-server: {e}"),
    };
    let url = redis.url();
    let store = RedisStore::connect(&url).await.expect("connecting");
    let backend = covet::cache::RedisBackend::connect(&url)
        .await
        .expect("connecting");
    // Sessions in a CacheStore on the very backend the cache uses.
    let cache_store = covet::session::CacheStore::new(backend.clone());
    let cache = Cache::builder().backend(backend).build().expect("a cache");
    let server = TestServer::start(app(Arc::new(store), Gate::default())).await;
    let login = send(&server, "POST", "/set/user/alice", None).await;
    let cookie = format!("id={}", login.cookie.expect("a session"));
    let other = TestServer::start(app(Arc::new(cache_store), Gate::default())).await;
    let login = send(&other, "POST", "/set/user/bob", None).await;
    let other_cookie = format!("id={}", login.cookie.expect("a session"));
    cache
        .set("page", &"cached".to_owned(), None)
        .await
        .expect("set");
    cache
        .set_tagged("tagged", &1u8, None, &["t"])
        .await
        .expect("set");
    cache.clear().await.expect("clear");
    cache.delete_pattern("*").await.expect("pattern delete");
    cache.invalidate_tag("t").await.expect("tag");
    assert_eq!(cache.get::<String>("page").await.expect("get"), None);
    let who = send(&server, "GET", "/get/user", Some(&cookie)).await;
    assert_eq!(who.body, "alice", "a cache operation logged the user out");
    let who = send(&other, "GET", "/get/user", Some(&other_cookie)).await;
    assert_eq!(
        who.body, "bob",
        "a cache operation removed a CacheStore session"
    );
}

#[tokio::test]
async fn a_save_inside_a_handler_gets_its_cookie() {
    let Some(store) = redis_store().await else {
        return;
    };
    let server = TestServer::start(app(Arc::new(store), Gate::default())).await;
    let r = send(&server, "POST", "/manual", None).await;
    assert_eq!(r.body, "saved");
    let cookie = r
        .cookie
        .expect("the session the handler saved has no cookie");
    let theme = send(&server, "GET", "/get/theme", Some(&format!("id={cookie}"))).await;
    assert_eq!(theme.body, "dark");
}

#[tokio::test]
async fn a_session_page_behind_the_http_cache_is_never_shared() {
    use covet::cache::http::HttpCacheLayer;
    let Some(store) = redis_store().await else {
        return;
    };
    let cached = app(Arc::new(store), Gate::default())
        .layer(HttpCacheLayer::new(Cache::memory()).default_ttl(Duration::from_secs(60)));
    let server = TestServer::start(cached).await;
    let login = send(&server, "POST", "/set/user/alice", None).await;
    let cookie = format!("id={}", login.cookie.expect("a session"));
    assert_eq!(
        send(&server, "GET", "/get/user", Some(&cookie)).await.body,
        "alice"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stranger = send(&server, "GET", "/get/user", None).await;
    assert_eq!(stranger.body, "-", "alice's page was served to a stranger");
}

#[tokio::test]
async fn a_corrupt_record_starts_a_fresh_session_instead_of_failing() {
    let Some(store) = redis_store().await else {
        return;
    };
    let url = require(Server::Redis).expect("checked above");
    let server = TestServer::start(app(Arc::new(store.clone()), Gate::default())).await;
    let login = send(&server, "POST", "/set/user/alice", None).await;
    let value = login.cookie.expect("a session");
    let id: covet::session::SessionId = value.parse().expect("an id");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting");
    let _: () = redis::cmd("HSET")
        .arg(store.redis_key(&id))
        .arg("user")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .expect("corrupting");
    let cookie = format!("id={value}");
    for _ in 0..2 {
        let r = send(&server, "GET", "/get/user", Some(&cookie)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "-"),
            "a corrupt record is a fresh session"
        );
    }
    let exists: bool = redis::cmd("EXISTS")
        .arg(store.redis_key(&id))
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert!(!exists, "the corrupt record is deleted");
}

#[tokio::test]
async fn an_app_key_cannot_corrupt_its_own_record() {
    let Some(store) = redis_store().await else {
        return;
    };
    let server = TestServer::start(app(Arc::new(store), Gate::default())).await;
    let login = send(&server, "POST", "/set/user/alice", None).await;
    let cookie = format!("id={}", login.cookie.expect("a session"));
    let r = send(
        &server,
        "POST",
        "/set/__covet_expires_at/soon",
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let who = send(&server, "GET", "/get/user", Some(&cookie)).await;
    assert_eq!((who.status, who.body.as_str()), (200, "alice"));
}

#[tokio::test]
async fn a_planted_session_cookie_never_wins_over_the_real_one() {
    let Some(store) = redis_store().await else {
        return;
    };
    let server = TestServer::start(app(Arc::new(store), Gate::default())).await;
    let victim = send(&server, "POST", "/set/user/alice", None)
        .await
        .cookie
        .expect("a session");
    let attacker = send(&server, "POST", "/set/user/mallory", None)
        .await
        .cookie
        .expect("a session");
    // A sibling subdomain planted mallory's cookie; the browser sends both.
    let both = format!("id={attacker}; id={victim}");
    let who = send(&server, "GET", "/get/user", Some(&both)).await;
    assert_ne!(who.body, "mallory", "the planted session won");
}

/// Two processes, each with its own in-memory tier in front of one shared
/// store, with no invalidation messages between them: a fast tier keeps
/// what it read, the case where a stale copy is certain.
/// The third store reads what the shared one holds.
fn two_tiered_stores() -> (
    Arc<dyn SessionStore>,
    Arc<dyn SessionStore>,
    Arc<dyn SessionStore>,
) {
    let shared = Arc::new(covet::cache::MemoryBackend::new());
    let store = |shared: Arc<covet::cache::MemoryBackend>| -> Arc<dyn SessionStore> {
        let tiered = covet::cache::Tiered::new(covet::cache::MemoryBackend::new(), shared);
        Arc::new(covet::session::CacheStore::new(tiered))
    };
    let truth: Arc<dyn SessionStore> = Arc::new(covet::session::CacheStore::new(shared.clone()));
    (store(shared.clone()), store(shared), truth)
}

#[tokio::test]
async fn a_tiered_cache_store_never_writes_back_a_stale_local_copy() {
    use covet::session::store::{Changes, Data, Record};
    use std::time::SystemTime;
    let (a, b, truth) = two_tiered_stores();
    let expires = SystemTime::now() + Duration::from_secs(60);
    for round in 0..20 {
        let id = a
            .create(&Record::new(Data::new(), expires))
            .await
            .expect("create");
        // Process B reads the session: its fast tier now holds a copy.
        assert!(b.load(&id).await.expect("load").is_some());
        // Process A changes it, and B changes another key at once.
        let mut from_a = Changes::new(expires);
        from_a.set.insert("a".into(), serde_json::json!(round));
        a.save(&id, &from_a).await.expect("save");
        let mut from_b = Changes::new(expires);
        from_b.set.insert("b".into(), serde_json::json!(round));
        b.save(&id, &from_b).await.expect("save");
        let record = truth.load(&id).await.expect("load").expect("live");
        assert_eq!(
            record.data.get("a"),
            Some(&serde_json::json!(round)),
            "A's change lost"
        );
        assert_eq!(record.data.get("b"), Some(&serde_json::json!(round)));
        // A deletes it (a logout); B's save right after must not revive it.
        a.delete(&id).await.expect("delete");
        let mut late = Changes::new(expires);
        late.set.insert("late".into(), serde_json::json!(true));
        assert_eq!(
            b.save(&id, &late).await.expect("save"),
            None,
            "a deleted session came back"
        );
        assert!(truth.load(&id).await.expect("load").is_none());
    }
}
