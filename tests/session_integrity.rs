//! Sessions that can carry a login, black-box over real HTTP against every
//! store: id rotation, logout that sticks, timeouts, size limits, reserved
//! keys, response headers, per-user sessions, and no lost writes.
//!
//! Each scenario runs against every store; where a client-side store
//! (`CookieStore`) cannot do what a server-side one does, the scenario
//! checks the documented behaviour instead.

#![cfg(feature = "axum")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::stores::{self, Store};
use covet::session::{Error, Session, SessionConfig, SessionLayer};
use covet_test::http::{TestServer, cookie_value};

// ---------------------------------------------------------------------
// The app.

#[derive(Clone, Default)]
struct Gate {
    entered: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

struct AppError(Error);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::ReservedKey(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.0.to_string()).into_response()
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError(e)
    }
}

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<String, AppError> {
    session.insert(&k, v)?;
    Ok("ok".into())
}

async fn read(session: Session, Path(k): Path<String>) -> Result<String, AppError> {
    Ok(session.get::<String>(&k)?.unwrap_or_else(|| "-".into()))
}

async fn login(session: Session, Path(user): Path<String>) -> Result<String, AppError> {
    session.login(&user)?;
    Ok(format!("welcome {user}"))
}

async fn whoami(session: Session) -> String {
    session.user_id().unwrap_or_else(|| "anonymous".into())
}

/// Ends this user's other sessions: how many, or `unsupported`.
async fn end_others(session: Session) -> String {
    match session.end_other_sessions().await {
        Ok(n) => n.to_string(),
        Err(Error::Unsupported { .. }) => "unsupported".to_owned(),
        Err(e) => panic!("ending the other sessions: {e}"),
    }
}

async fn logout(session: Session) -> &'static str {
    session.logout();
    // Ignored: the session is over.
    let _ = session.insert("after", "logout");
    "bye"
}

/// Loads the session, waits for the test, then writes.
async fn slow(
    State(gate): State<Gate>,
    session: Session,
    Path((k, v)): Path<(String, String)>,
) -> Result<String, AppError> {
    gate.entered.fetch_add(1, Ordering::SeqCst);
    gate.release.notified().await;
    session.insert(&k, v)?;
    Ok("slow done".into())
}

/// Saves inside the handler.
async fn manual(
    session: Session,
    Path((k, v)): Path<(String, String)>,
) -> Result<String, AppError> {
    session.insert(&k, v)?;
    session.save().await?;
    Ok("saved".into())
}

async fn manual_clear(session: Session) -> Result<&'static str, AppError> {
    session.clear();
    session.save().await?;
    Ok("cleared")
}

/// Sets its own Cache-Control while changing the session.
async fn own_cache_control(session: Session) -> Result<Response, AppError> {
    session.insert("touched", "yes")?;
    Ok(([(header::CACHE_CONTROL, "private, max-age=5")], "mine").into_response())
}

fn app(store: Store, config: SessionConfig) -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/get/{k}", get(read))
        .route("/login/{user}", post(login))
        .route("/whoami", get(whoami))
        .route("/end-others", post(end_others))
        .route("/logout", post(logout))
        .route("/slow/{k}/{v}", post(slow))
        .route("/manual/{k}/{v}", post(manual))
        .route("/manual-clear", post(manual_clear))
        .route("/own-cache-control", post(own_cache_control))
        .route("/none", get(|| async { "no session" }))
        .layer(SessionLayer::from_shared(store).with_config(config))
        .with_state(Gate::default())
}

fn app_with_gate(store: Store, config: SessionConfig, gate: Gate) -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/get/{k}", get(read))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .route("/slow/{k}/{v}", post(slow))
        .layer(SessionLayer::from_shared(store).with_config(config))
        .with_state(gate)
}

fn config() -> SessionConfig {
    SessionConfig::default().with_secure(false)
}

// ---------------------------------------------------------------------
// A client that keeps the session cookie by hand, so tests can replay,
// plant and drop it.

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Arc<parking_lot::Mutex<Option<String>>>,
    user_agent: &'static str,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect()
    }

    /// The value this response sets the `id` cookie to (`Some("")` for a
    /// removal).
    fn session_cookie(&self) -> Option<String> {
        self.set_cookies()
            .iter()
            .find_map(|c| cookie_value(c, "id").map(str::to_owned))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    fn new(server: &TestServer) -> Client {
        Client::with_agent(server, "covet-test")
    }

    fn with_agent(server: &TestServer, user_agent: &'static str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr()),
            cookie: Arc::default(),
            user_agent,
        }
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().clone()
    }

    fn set_cookie(&self, value: Option<String>) {
        *self.cookie.lock() = value;
    }

    async fn send(&self, method: reqwest::Method, path: &str, cookie: Option<String>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", self.user_agent);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.expect("request");
        let reply = Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        };
        if let Some(v) = reply.session_cookie() {
            self.set_cookie((!v.is_empty()).then_some(v));
        }
        reply
    }

    fn header(&self) -> Option<String> {
        self.cookie().map(|c| format!("id={c}"))
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, self.header()).await
    }

    async fn post(&self, path: &str) -> Reply {
        self.send(reqwest::Method::POST, path, self.header()).await
    }

    /// A request with exactly this `Cookie` header, leaving the kept
    /// cookie as it is.
    async fn get_as(&self, path: &str, cookie: Option<String>) -> Reply {
        let kept = self.cookie();
        let r = self.send(reqwest::Method::GET, path, cookie).await;
        self.set_cookie(kept);
        r
    }
}

// ---------------------------------------------------------------------
// 1. Rotation.

async fn login_rotates_the_id(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let c = Client::new(&server);
    c.post("/set/cart/book").await;
    let anonymous = c.cookie().expect("an anonymous session");
    let r = c.post("/login/alice").await;
    assert_eq!(r.body, "welcome alice");
    let logged_in = c.cookie().expect("a cookie after login");
    assert_ne!(logged_in, anonymous, "login must change the id");
    assert_eq!(c.get("/whoami").await.body, "alice");
    assert_eq!(
        c.get("/get/cart").await.body,
        "book",
        "the same user keeps the data"
    );
    // The pre-login cookie (say, one an attacker planted) is not logged in.
    let old = c.get_as("/whoami", Some(format!("id={anonymous}"))).await;
    assert_eq!(old.body, "anonymous");
}

async fn login_as_another_user_starts_empty(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let c = Client::new(&server);
    c.post("/login/alice").await;
    c.post("/set/secret/alices").await;
    c.post("/login/bob").await;
    assert_eq!(c.get("/whoami").await.body, "bob");
    assert_eq!(
        c.get("/get/secret").await.body,
        "-",
        "bob never sees alice's data"
    );
}

async fn several_session_cookies_are_not_trusted_blindly(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let victim = Client::new(&server);
    victim.post("/login/alice").await;
    let valid = victim.cookie().expect("alice's cookie");
    // A garbage or unknown cookie planted next to the real one loses.
    let planted_unknown = "id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for header in [
        format!("{planted_unknown}; id={valid}"),
        format!("id={valid}; {planted_unknown}"),
    ] {
        assert_eq!(victim.get_as("/whoami", Some(header)).await.body, "alice");
    }
    // A valid attacker session planted next to the victim's: neither is
    // trusted.
    let attacker = Client::new(&server);
    attacker.post("/login/mallory").await;
    let planted = attacker.cookie().expect("mallory's cookie");
    for header in [
        format!("id={planted}; id={valid}"),
        format!("id={valid}; id={planted}"),
    ] {
        let r = victim.get_as("/whoami", Some(header)).await;
        assert_eq!(
            r.body, "anonymous",
            "a planted session won over a valid one"
        );
    }
}

// ---------------------------------------------------------------------
// 2. Logout that sticks.

async fn logout_removes_the_cookie_and_ignores_later_writes(store: Store) {
    let client_side = store.is_client_side();
    let server = TestServer::start(app(store, config().with_clear_site_data(true))).await;
    let c = Client::new(&server);
    c.post("/login/alice").await;
    let before = c.cookie().expect("a session");
    let r = c.post("/logout").await;
    assert_eq!(r.body, "bye");
    assert_eq!(r.session_cookie().as_deref(), Some(""), "a removal cookie");
    let removal = r.set_cookies().join("\n");
    assert!(
        removal.contains("Max-Age=0") && removal.contains("HttpOnly"),
        "{removal}"
    );
    assert_eq!(
        r.header("clear-site-data"),
        Some("\"cache\", \"cookies\", \"storage\"")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(c.get("/whoami").await.body, "anonymous");
    let replay = c.get_as("/whoami", Some(format!("id={before}"))).await;
    if client_side {
        // Documented: a copied cookie-store value stays valid until the
        // expiry sealed inside it.
        assert_eq!(replay.body, "alice");
    } else {
        assert_eq!(replay.body, "anonymous", "logout did not stick");
    }
}

async fn a_slow_request_cannot_undo_a_logout(store: Store) {
    let client_side = store.is_client_side();
    let gate = Gate::default();
    let server = Arc::new(TestServer::start(app_with_gate(store, config(), gate.clone())).await);
    let c = Client::new(&server);
    c.post("/login/alice").await;
    let cookie = c.cookie().expect("a session");
    // A slow request loads alice's session...
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.post("/slow/late/write").await })
    };
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... the logout finishes first ...
    let out = c.post("/logout").await;
    assert_eq!(out.session_cookie().as_deref(), Some(""));
    // ... and the slow request ends after it.
    gate.release.notify_one();
    let late = slow.await.expect("task");
    assert_eq!(late.body, "slow done");
    let relogged = c.get_as("/get/late", Some(format!("id={cookie}"))).await;
    match late.session_cookie() {
        Some(v) if !v.is_empty() => {
            assert!(client_side, "a server store re-created the session: {v}");
        }
        _ => {
            assert_eq!(relogged.body, "-", "the old session came back");
        }
    }
    if !client_side {
        assert_eq!(
            late.session_cookie().as_deref(),
            Some(""),
            "the cookie is removed"
        );
        assert_eq!(relogged.body, "-");
    }
}

async fn a_save_inside_a_handler_still_gets_its_cookie(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let c = Client::new(&server);
    let r = c.post("/manual/theme/dark").await;
    assert_eq!(r.body, "saved");
    assert!(
        c.cookie().is_some(),
        "the layer sent the cookie of a handler's save"
    );
    assert_eq!(c.get("/get/theme").await.body, "dark");
    let r = c.post("/manual-clear").await;
    assert_eq!(r.session_cookie().as_deref(), Some(""), "a removal cookie");
    assert_eq!(c.get("/get/theme").await.body, "-");
}

// ---------------------------------------------------------------------
// 3. Timeouts.

async fn the_absolute_timeout_ends_an_active_session(store: Store) {
    let config = config()
        .with_idle_timeout(Duration::from_secs(60))
        .with_absolute_timeout(Duration::from_secs(2));
    let server = TestServer::start(app(store, config)).await;
    let c = Client::new(&server);
    c.post("/set/k/v").await;
    let first = c.cookie().expect("a session");
    // Busy all along: a change every 400 ms.
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(c.post(&format!("/set/n/{i}")).await.status, 200);
        assert_eq!(c.get("/get/k").await.body, "v", "still live at {i}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(c.get("/get/k").await.body, "-", "past the absolute timeout");
    let replay = c.get_as("/get/k", Some(format!("id={first}"))).await;
    assert_eq!(replay.body, "-");
}

async fn the_idle_timeout_is_enforced_by_the_server(store: Store) {
    let config = config().with_idle_timeout(Duration::from_secs(1));
    let server = TestServer::start(app(store, config)).await;
    let c = Client::new(&server);
    let r = c.post("/set/k/v").await;
    assert!(r.set_cookies()[0].contains("Max-Age=1"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The client ignores Max-Age and sends the cookie anyway.
    assert_eq!(c.get("/get/k").await.body, "-");
}

async fn renewal_writes_at_most_once_per_interval(store: Store) {
    let config = config()
        .with_idle_timeout(Duration::from_secs(60))
        .with_renewal_interval(Duration::from_secs(1));
    let server = TestServer::start(app(store, config)).await;
    let c = Client::new(&server);
    c.post("/set/k/v").await;
    for _ in 0..3 {
        let r = c.get("/get/k").await;
        assert!(
            r.set_cookies().is_empty(),
            "renewed too soon: {:?}",
            r.set_cookies()
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = c.get("/get/k").await;
    assert_eq!(renewed.body, "v");
    assert_eq!(
        renewed.set_cookies().len(),
        1,
        "one renewal after the interval"
    );
    assert!(c.get("/get/k").await.set_cookies().is_empty());
}

async fn browser_session_cookies_have_no_max_age(store: Store) {
    let server = TestServer::start(app(store, config().with_browser_session(true))).await;
    let c = Client::new(&server);
    let r = c.post("/set/k/v").await;
    let cookie = r.set_cookies().join("\n");
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    assert_eq!(c.get("/get/k").await.body, "v");
}

// ---------------------------------------------------------------------
// 4. Size limits; 5. reserved keys.

async fn an_insert_past_the_size_limit_is_refused(store: Store) {
    let server = TestServer::start(app(store, config().with_max_size(1024))).await;
    let c = Client::new(&server);
    let big = "a".repeat(600);
    assert_eq!(c.post(&format!("/set/first/{big}")).await.status, 200);
    let r = c.post(&format!("/set/second/{big}")).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("limit of 1024"), "{}", r.body);
    assert_eq!(
        c.get("/get/first").await.body,
        big,
        "the stored session is unchanged"
    );
    assert_eq!(c.get("/get/second").await.body, "-");
}

async fn reserved_keys_are_refused(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let c = Client::new(&server);
    c.post("/login/alice").await;
    for key in [
        "__covet_expires_at",
        "__covet_user",
        "__covet.flash",
        "__covet",
    ] {
        let r = c.post(&format!("/set/{key}/mallory")).await;
        assert_eq!(r.status, 400, "{key}: {}", r.body);
    }
    assert_eq!(c.get("/whoami").await.body, "alice");
}

// ---------------------------------------------------------------------
// 7. Headers.

async fn session_responses_vary_on_cookie_and_are_not_stored(store: Store) {
    let server = TestServer::start(app(store, config())).await;
    let c = Client::new(&server);
    let set = c.post("/set/k/v").await;
    assert_eq!(set.header("vary"), Some("Cookie"));
    assert_eq!(set.header("cache-control"), Some("no-store"));
    let read = c.get("/get/k").await;
    assert_eq!(
        read.header("vary"),
        Some("Cookie"),
        "reading the session is enough"
    );
    let own = c.post("/own-cache-control").await;
    assert_eq!(own.header("cache-control"), Some("private, max-age=5"));
    let none = c.get("/none").await;
    assert_eq!(none.header("vary"), None, "no session, no Vary");
}

async fn an_http_cache_in_front_never_serves_one_users_page_to_another(store: Store) {
    use covet::cache::http::HttpCacheLayer;
    let inner = app(store, config());
    let cached = inner.layer(
        HttpCacheLayer::new(covet::cache::Cache::memory()).default_ttl(Duration::from_secs(60)),
    );
    let server = TestServer::start(cached).await;
    let alice = Client::new(&server);
    alice.post("/login/alice").await;
    assert_eq!(alice.get("/whoami").await.body, "alice");
    assert_eq!(alice.get("/whoami").await.body, "alice");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stranger = Client::new(&server);
    assert_eq!(stranger.get("/whoami").await.body, "anonymous");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bob = Client::new(&server);
    bob.post("/login/bob").await;
    assert_eq!(bob.get("/whoami").await.body, "bob");
}

// ---------------------------------------------------------------------
// 9. Per-user sessions.

/// Alice logged in on a phone and a laptop, Bob on his own client.
async fn alice_twice_and_bob(server: &TestServer) -> (Client, Client, Client) {
    let phone = Client::with_agent(server, "phone");
    let laptop = Client::with_agent(server, "laptop");
    let bob = Client::new(server);
    phone.post("/login/alice").await;
    laptop.post("/login/alice").await;
    bob.post("/login/bob").await;
    (phone, laptop, bob)
}

async fn a_users_sessions_are_listed_and_revoked(store: Store) {
    let server = TestServer::start(app(store.clone(), config())).await;
    let (phone, laptop, bob) = alice_twice_and_bob(&server).await;
    if store.is_client_side() {
        let err = store.list_user_sessions("alice").await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = store.delete_user_sessions("alice").await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        return;
    }
    let sessions = store.list_user_sessions("alice").await.expect("listing");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let mut agents: Vec<_> = sessions
        .iter()
        .filter_map(|s| s.user_agent.clone())
        .collect();
    agents.sort();
    assert_eq!(agents, ["laptop", "phone"]);
    for s in &sessions {
        assert_eq!(s.id_hash.len(), 12);
        assert!(s.created_at.is_some() && s.last_seen.is_some());
        let cookies = [phone.cookie(), laptop.cookie()];
        assert!(cookies.iter().flatten().all(|c| !c.contains(&s.id_hash)));
    }
    assert_eq!(
        store.delete_user_sessions("alice").await.expect("revoking"),
        2
    );
    assert_eq!(phone.get("/whoami").await.body, "anonymous");
    assert_eq!(laptop.get("/whoami").await.body, "anonymous");
    assert_eq!(bob.get("/whoami").await.body, "bob");
    assert!(
        store
            .list_user_sessions("alice")
            .await
            .expect("listing")
            .is_empty()
    );
    assert_eq!(
        store
            .list_user_sessions("bob")
            .await
            .expect("listing")
            .len(),
        1
    );
}

async fn a_users_other_sessions_are_ended_and_this_one_kept(store: Store) {
    let server = TestServer::start(app(store.clone(), config())).await;
    let (phone, laptop, bob) = alice_twice_and_bob(&server).await;
    let anonymous = Client::new(&server);
    assert_eq!(anonymous.post("/end-others").await.body, "0");
    let ended = laptop.post("/end-others").await;
    if store.is_client_side() {
        assert_eq!(ended.body, "unsupported");
        return;
    }
    assert_eq!(ended.body, "1");
    assert_eq!(phone.get("/whoami").await.body, "anonymous");
    assert_eq!(laptop.get("/whoami").await.body, "alice");
    assert_eq!(bob.get("/whoami").await.body, "bob");
    let left = store.list_user_sessions("alice").await.expect("listing");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].user_agent.as_deref(), Some("laptop"));
    // Nothing else to end.
    assert_eq!(laptop.post("/end-others").await.body, "0");
}

// ---------------------------------------------------------------------
// 10. No lost writes.

async fn fifty_concurrent_requests_each_keep_their_key(store: Store) {
    let client_side = store.is_client_side();
    let server = Arc::new(TestServer::start(app(store, config())).await);
    let c = Client::new(&server);
    c.post("/set/base/0").await;
    let cookie = c.header();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let c = Client::new(&server);
        c.set_cookie(cookie.as_ref().map(|h| h["id=".len()..].to_owned()));
        tasks.push(tokio::spawn(async move {
            c.post(&format!("/set/k{i}/v{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    if client_side {
        // Documented: each response carries its own cookie; the browser
        // keeps the last, so concurrent changes to a cookie session do not
        // merge.
        return;
    }
    for i in 0..50 {
        assert_eq!(
            c.get(&format!("/get/k{i}")).await.body,
            format!("v{i}"),
            "k{i} lost"
        );
    }
}

async fn two_writes_of_one_key_the_last_wins(store: Store) {
    let client_side = store.is_client_side();
    let gate = Gate::default();
    let server = Arc::new(TestServer::start(app_with_gate(store, config(), gate.clone())).await);
    let c = Client::new(&server);
    c.post("/set/k/initial").await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.post("/slow/k/slow").await })
    };
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.post("/set/k/fast").await.status, 200);
    if !client_side {
        assert_eq!(c.get("/get/k").await.body, "fast");
    }
    gate.release.notify_one();
    slow.await.expect("task");
    assert_eq!(c.get("/get/k").await.body, "slow", "the last save wins");
}

macro_rules! integrity_suite {
    ($name:ident, $store:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn store() -> Option<Store> {
                $store
            }

            integrity_suite!(@cases
                login_rotates_the_id,
                login_as_another_user_starts_empty,
                several_session_cookies_are_not_trusted_blindly,
                logout_removes_the_cookie_and_ignores_later_writes,
                a_slow_request_cannot_undo_a_logout,
                a_save_inside_a_handler_still_gets_its_cookie,
                the_absolute_timeout_ends_an_active_session,
                the_idle_timeout_is_enforced_by_the_server,
                renewal_writes_at_most_once_per_interval,
                browser_session_cookies_have_no_max_age,
                an_insert_past_the_size_limit_is_refused,
                reserved_keys_are_refused,
                session_responses_vary_on_cookie_and_are_not_stored,
                an_http_cache_in_front_never_serves_one_users_page_to_another,
                a_users_sessions_are_listed_and_revoked,
                a_users_other_sessions_are_ended_and_this_one_kept,
                fifty_concurrent_requests_each_keep_their_key,
                two_writes_of_one_key_the_last_wins,
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

integrity_suite!(memory, stores::memory().await);
integrity_suite!(cookie_encrypted, stores::cookie_encrypted().await);
integrity_suite!(cache_memory, stores::cache_memory().await);
#[cfg(feature = "redis")]
integrity_suite!(cache_redis, stores::cache_redis().await);
#[cfg(feature = "redis")]
integrity_suite!(cache_tiered, stores::cache_tiered().await);
#[cfg(feature = "redis")]
integrity_suite!(redis_single, stores::redis_single().await);
#[cfg(feature = "redis")]
integrity_suite!(redis_cluster, stores::redis_cluster().await);
#[cfg(feature = "sql-postgres")]
integrity_suite!(sql_postgres, stores::sql_postgres().await);
#[cfg(feature = "sql-mysql")]
integrity_suite!(sql_mysql, stores::sql_mysql().await);
#[cfg(feature = "sql-sqlite")]
integrity_suite!(sql_sqlite, stores::sql_sqlite().await);

// ---------------------------------------------------------------------
// 6. Cookie rules, checked when the layer is built.

#[test]
#[should_panic(expected = "invalid session configuration")]
fn an_invalid_config_is_refused_when_the_layer_is_built() {
    let _ = SessionLayer::new(covet::session::MemoryStore::new()).with_config(
        SessionConfig::default()
            .with_cookie_name("__Host-id")
            .with_domain("example.com"),
    );
}

#[test]
fn try_with_config_says_why() {
    for config in [
        SessionConfig::default()
            .with_secure(false)
            .with_same_site(covet::session::SameSite::None),
        SessionConfig::default().with_cookie_name("id; Domain=evil"),
        SessionConfig::default().with_idle_timeout(Duration::MAX),
        SessionConfig::default()
            .with_cookie_name("__Secure-id")
            .with_secure(false),
    ] {
        let err = SessionLayer::new(covet::session::MemoryStore::new())
            .try_with_config(config)
            .unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

// ---------------------------------------------------------------------
// 5. A corrupt stored record is no session (SQL and CacheStore; Redis in
// tests/session_defects.rs).

/// Logs in over HTTP, corrupts the stored record with `corrupt`, and
/// checks that the browser gets a fresh session (twice), not a 500.
async fn a_corrupt_record_is_a_fresh_session<F, Fut>(store: Store, corrupt: F)
where
    F: FnOnce(covet::session::SessionId) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let server = TestServer::start(app(store.clone(), config())).await;
    let c = Client::new(&server);
    c.post("/login/alice").await;
    let value = c.cookie().expect("a session");
    corrupt(value.parse().expect("an id")).await;
    for _ in 0..2 {
        let r = c.get_as("/whoami", Some(format!("id={value}"))).await;
        assert_eq!((r.status, r.body.as_str()), (200, "anonymous"));
    }
    let id: covet::session::SessionId = value.parse().expect("an id");
    assert!(store.load(&id).await.expect("load").is_none(), "deleted");
}

#[tokio::test]
async fn corrupt_cache_store_records_are_fresh_sessions() {
    use covet::cache::CacheBackend;
    let backend = Arc::new(covet::cache::MemoryBackend::new());
    let store: Store = Arc::new(covet::session::CacheStore::new(backend.clone()));
    a_corrupt_record_is_a_fresh_session(store, |id| async move {
        let key = format!(
            "{}{}",
            covet::session::store::SESSION_KEY_ROOT,
            id.storage_key()
        );
        backend
            .set(&key, bytes::Bytes::from_static(b"{not json"), None)
            .await
            .expect("corrupting");
    })
    .await;
}

#[cfg(feature = "sql-sqlite")]
#[tokio::test]
async fn corrupt_sql_rows_are_fresh_sessions() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("SQLite");
    let store = covet::session::SqlStore::builder()
        .table_name("corrupt_test")
        .sqlite(pool.clone())
        .expect("a store");
    store.migrate().await.expect("migrating");
    a_corrupt_record_is_a_fresh_session(Arc::new(store), |id| async move {
        sqlx::query("UPDATE corrupt_test SET data = '[1, 2' WHERE storage_key = ?")
            .bind(id.storage_key())
            .execute(&pool)
            .await
            .expect("corrupting");
    })
    .await;
}

#[cfg(feature = "sql-postgres")]
#[tokio::test]
async fn corrupt_postgres_rows_are_fresh_sessions() {
    let Some(url) = covet_test::require(covet_test::Server::Postgres) else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let table = covet_test::unique_namespace("covet_corrupt").replace('-', "_");
    let store = covet::session::SqlStore::builder()
        .table_name(table.clone())
        .postgres(pool.clone())
        .expect("a store");
    store.migrate().await.expect("migrating");
    let (p, t) = (pool.clone(), table.clone());
    a_corrupt_record_is_a_fresh_session(Arc::new(store), |id| async move {
        sqlx::query(&format!(
            "UPDATE \"{t}\" SET data = 'oops' WHERE storage_key = $1"
        ))
        .bind(id.storage_key())
        .execute(&p)
        .await
        .expect("corrupting");
    })
    .await;
    sqlx::query(&format!("DROP TABLE \"{table}\""))
        .execute(&pool)
        .await
        .expect("dropping the test table");
}

#[cfg(feature = "sql-mysql")]
#[tokio::test]
async fn corrupt_mariadb_rows_are_fresh_sessions() {
    let Some(url) = covet_test::require(covet_test::Server::Mysql) else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&url).await.expect("MariaDB");
    let table = covet_test::unique_namespace("covet_corrupt").replace('-', "_");
    let store = covet::session::SqlStore::builder()
        .table_name(table.clone())
        .mysql(pool.clone())
        .expect("a store");
    store.migrate().await.expect("migrating");
    let (p, t) = (pool.clone(), table.clone());
    a_corrupt_record_is_a_fresh_session(Arc::new(store), |id| async move {
        sqlx::query(&format!(
            "UPDATE `{t}` SET data = '{{' WHERE storage_key = ?"
        ))
        .bind(id.storage_key())
        .execute(&p)
        .await
        .expect("corrupting");
    })
    .await;
    sqlx::query(&format!("DROP TABLE `{table}`"))
        .execute(&pool)
        .await
        .expect("dropping the test table");
}
