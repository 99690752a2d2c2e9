//! `SessionLayer::stats()` over real HTTP requests, against every store:
//! each counter moves when, and only when, what it counts happens.

#![cfg(feature = "axum")]

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use common::stores::{self, Store};
use covet::session::{Binding, CsrfLayer, Session, SessionConfig, SessionLayer, SessionStats};
use covet_test::http::{TestServer, cookie_value};

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> String {
    session.insert(&k, v).expect("insert");
    "ok".into()
}

async fn read(session: Session, Path(k): Path<String>) -> String {
    session
        .get::<String>(&k)
        .expect("get")
        .unwrap_or_else(|| "-".into())
}

async fn login(session: Session, Path(user): Path<String>) -> String {
    session.login(&user).expect("login");
    format!("welcome {user}")
}

async fn logout(session: Session) -> &'static str {
    session.logout();
    "bye"
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/get/{k}", get(read))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .layer(layer)
}

fn config() -> SessionConfig {
    SessionConfig::default().with_secure(false)
}

/// Sends one request with `cookie` (a whole `Cookie` header value); returns
/// the status and the session cookie the response sets, if any.
async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    agent: &str,
) -> (u16, Option<String>) {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{}{path}", server.addr()))
        .header("user-agent", agent);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("request");
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| cookie_value(v.to_str().ok()?, "id").map(str::to_owned));
    (resp.status().as_u16(), set)
}

/// A browser: keeps the session cookie.
struct Browser<'a> {
    server: &'a TestServer,
    cookie: Option<String>,
    agent: &'static str,
}

impl Browser<'_> {
    async fn request(&mut self, method: reqwest::Method, path: &str) -> u16 {
        let header = self.cookie.as_ref().map(|c| format!("id={c}"));
        let (status, set) = send(self.server, method, path, header.as_deref(), self.agent).await;
        if let Some(v) = set {
            self.cookie = (!v.is_empty()).then_some(v);
        }
        status
    }

    async fn post(&mut self, path: &str) -> u16 {
        self.request(reqwest::Method::POST, path).await
    }

    async fn get(&mut self, path: &str) -> u16 {
        self.request(reqwest::Method::GET, path).await
    }
}

/// `stats` with only the named fields moved from `before`.
macro_rules! moved {
    ($before:expr, $($field:ident += $n:expr),* $(,)?) => {{
        let mut want: SessionStats = $before;
        $(want.$field += $n;)*
        want
    }};
}

async fn the_life_of_a_session_is_counted(store: Store) {
    let client_side = store.is_client_side();
    let layer = SessionLayer::from_shared(store).with_config(config());
    let server = TestServer::start(app(layer.clone())).await;
    let mut b = Browser {
        server: &server,
        cookie: None,
        agent: "stats-test",
    };
    let zero = layer.stats();
    assert_eq!(zero, SessionStats::default());

    assert_eq!(b.post("/set/a/1").await, 200);
    let s1 = moved!(zero, created += 1);
    assert_eq!(layer.stats(), s1, "created");

    assert_eq!(b.get("/get/a").await, 200);
    let s2 = moved!(s1, loaded += 1);
    assert_eq!(layer.stats(), s2, "loaded, nothing to save");

    assert_eq!(b.post("/set/b/2").await, 200);
    let s3 = moved!(s2, loaded += 1, saved += 1);
    assert_eq!(layer.stats(), s3, "loaded and saved");

    assert_eq!(b.post("/login/alice").await, 200);
    let s4 = moved!(s3, loaded += 1, rotated += 1);
    assert_eq!(layer.stats(), s4, "login rotates the id");

    let kept = b.cookie.clone();
    assert_eq!(b.post("/logout").await, 200);
    let s5 = moved!(s4, loaded += 1, deleted += 1);
    assert_eq!(layer.stats(), s5, "logout deletes");

    if !client_side {
        // The old cookie, replayed: an id the store no longer knows.
        let replay = kept.map(|c| format!("id={c}"));
        send(
            &server,
            reqwest::Method::GET,
            "/get/a",
            replay.as_deref(),
            "x",
        )
        .await;
        let s6 = moved!(s5, unknown_ids += 1);
        assert_eq!(layer.stats(), s6, "a replayed id is unknown");
        // No id this store could have issued: malformed.
        send(
            &server,
            reqwest::Method::GET,
            "/get/a",
            Some("id=%00bad"),
            "x",
        )
        .await;
        assert_eq!(
            layer.stats(),
            moved!(s6, malformed_cookies += 1),
            "malformed"
        );
    }

    // Every clone of the layer reads the same counters.
    assert_eq!(layer.clone().stats(), layer.stats());
    assert_eq!(layer.stats().store_errors, 0);
}

async fn expiry_and_binding_are_counted(store: Store) {
    let layer = SessionLayer::from_shared(store.clone())
        .with_config(config().with_binding(Binding::Strict));
    let server = TestServer::start(app(layer.clone())).await;
    let mut b = Browser {
        server: &server,
        cookie: None,
        agent: "stats-test",
    };
    b.post("/set/a/1").await;
    // The same cookie from another client.
    let header = b.cookie.as_ref().map(|c| format!("id={c}"));
    send(
        &server,
        reqwest::Method::GET,
        "/get/a",
        header.as_deref(),
        "thief",
    )
    .await;
    assert_eq!(layer.stats().binding_mismatches, 1);

    // A session older than the absolute timeout of the layer that reads
    // it (the timeout was shortened since it was created): refused.
    let mut b = Browser {
        server: &server,
        cookie: None,
        agent: "stats-test",
    };
    b.post("/set/a/1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let strict = SessionLayer::from_shared(store)
        .with_config(config().with_absolute_timeout(Duration::from_secs(1)));
    let strict_server = TestServer::start(app(strict.clone())).await;
    let header = b.cookie.as_ref().map(|c| format!("id={c}"));
    send(
        &strict_server,
        reqwest::Method::GET,
        "/get/a",
        header.as_deref(),
        "stats-test",
    )
    .await;
    let stats = strict.stats();
    assert_eq!(stats.expired_absolute, 1, "{stats:?}");
    assert_eq!(stats.loaded, 0, "{stats:?}");
}

async fn csrf_rejections_are_counted(store: Store) {
    let layer = SessionLayer::from_shared(store).with_config(config());
    let app = Router::new()
        .route("/form", post(|| async { "accepted" }))
        .route("/set/{k}/{v}", get(set))
        .layer(CsrfLayer::new())
        .layer(layer.clone());
    let server = TestServer::start(app).await;
    let mut b = Browser {
        server: &server,
        cookie: None,
        agent: "stats-test",
    };
    assert_eq!(b.get("/set/a/1").await, 200);
    assert_eq!(b.post("/form").await, 403, "no token");
    assert_eq!(b.post("/form").await, 403, "no token");
    assert_eq!(layer.stats().csrf_rejections, 2);
}

async fn count_is_the_live_sessions(store: Store) {
    let layer = SessionLayer::from_shared(store.clone()).with_config(config());
    let server = TestServer::start(app(layer)).await;
    let before = match store.count().await {
        Ok(n) => n,
        Err(covet::session::Error::Unsupported { operation, .. }) => {
            // A cookie store keeps nothing; a `CacheStore`'s backends
            // cannot count.
            assert_eq!(operation, "counting sessions");
            return;
        }
        Err(e) => panic!("count: {e}"),
    };
    let mut browsers: Vec<_> = (0..3)
        .map(|_| Browser {
            server: &server,
            cookie: None,
            agent: "stats-test",
        })
        .collect();
    for b in &mut browsers {
        b.post("/set/a/1").await;
    }
    assert_eq!(store.count().await.unwrap(), before + 3);
    browsers[0].post("/logout").await;
    assert_eq!(store.count().await.unwrap(), before + 2);
    // A user index is not a session.
    browsers[1].post("/login/alice").await;
    assert_eq!(store.count().await.unwrap(), before + 2);
}

macro_rules! stats_suite {
    ($name:ident, $store:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn store() -> Option<Store> {
                $store
            }

            stats_suite!(@cases
                the_life_of_a_session_is_counted,
                expiry_and_binding_are_counted,
                csrf_rejections_are_counted,
                count_is_the_live_sessions,
            );
        }
    };
    (@cases $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = store().await else { return };
                super::$case(store).await;
            }
        )*
    };
}

stats_suite!(memory, stores::memory().await);
stats_suite!(cookie_encrypted, stores::cookie_encrypted().await);
stats_suite!(cache_memory, stores::cache_memory().await);
#[cfg(feature = "redis")]
stats_suite!(redis_single, stores::redis_single().await);
#[cfg(feature = "redis")]
stats_suite!(cache_redis, stores::cache_redis().await);
#[cfg(feature = "sql-sqlite")]
stats_suite!(sql_sqlite, stores::sql_sqlite().await);
#[cfg(feature = "sql-postgres")]
stats_suite!(sql_postgres, stores::sql_postgres().await);
#[cfg(feature = "sql-mysql")]
stats_suite!(sql_mysql, stores::sql_mysql().await);
#[cfg(feature = "redis")]
stats_suite!(redis_cluster, stores::redis_cluster().await);
