//! Attacks on sessions and CSRF, black-box over real HTTP, against the
//! memory, Redis and SQL stores (and the cookie store where the attack
//! applies): tampered cookies, replays, fixation, a logout racing a slow
//! request, forged CSRF tokens and origins, header injection, oversize
//! headers and sessions, hijacking (client binding), a store that is down,
//! and the security events.

#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::stores::{self, Store};
use covet::session::{
    Binding, CsrfLayer, CsrfRejection, CsrfToken, Error, Session, SessionConfig, SessionLayer,
};
use covet_test::http::cookie_value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------
// The app: every unsafe route behind CsrfLayer.

#[derive(Clone, Default)]
struct AppState {
    handled: Arc<AtomicUsize>,
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

async fn form(token: CsrfToken) -> String {
    token.to_string()
}

async fn login(session: Session, Path(user): Path<String>) -> Result<String, AppError> {
    session.login(&user)?;
    Ok(format!("welcome {user}"))
}

async fn logout(session: Session) -> &'static str {
    session.logout();
    "bye"
}

async fn whoami(State(s): State<AppState>, session: Session) -> String {
    s.handled.fetch_add(1, Ordering::SeqCst);
    session.user_id().unwrap_or_else(|| "anonymous".into())
}

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<String, AppError> {
    session.insert(&k, v)?;
    Ok("ok".into())
}

async fn slow(State(s): State<AppState>, session: Session) -> Result<&'static str, AppError> {
    s.entered.fetch_add(1, Ordering::SeqCst);
    s.release.notified().await;
    session.insert("late", "write")?;
    Ok("slow done")
}

/// Echoes the body it got, so tests see that the CSRF layer handed it on.
async fn transfer(State(s): State<AppState>, body: String) -> String {
    s.handled.fetch_add(1, Ordering::SeqCst);
    format!("transferred: {body}")
}

fn config() -> SessionConfig {
    SessionConfig::default()
        .with_secure(false)
        .with_trusted_proxies(["127.0.0.1", "::1"])
}

fn app(store: Store, config: SessionConfig, state: AppState) -> Router {
    Router::new()
        .route("/form", get(form))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .route("/whoami", get(whoami))
        .route("/set/{k}/{v}", post(set))
        .route("/slow", post(slow))
        .route("/transfer", post(transfer))
        .route("/webhooks/pay", post(transfer))
        .layer(
            CsrfLayer::new()
                .with_trusted_origins(["https://admin.shop.test"])
                .with_exempt(|req| req.uri.path().starts_with("/webhooks/")),
        )
        .layer(SessionLayer::from_shared(store).with_config(config))
        .with_state(state)
}

/// An app on a loopback listener that knows each connection's peer.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serving");
        });
        Server { addr, task }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------
// A browser that keeps the session cookie and sends the CSRF token.

#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Arc<parking_lot::Mutex<Option<String>>>,
    /// Extra headers on every request (`User-Agent`, `X-Forwarded-For`).
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .find_map(|v| cookie_value(v.to_str().ok()?, "id").map(str::to_owned))
    }
}

impl Browser {
    fn new(server: &Server) -> Browser {
        Browser {
            http: reqwest::Client::new(),
            base: server.origin(),
            cookie: Arc::default(),
            headers: Vec::new(),
        }
    }

    fn from(mut self, ip: &str, agent: &str) -> Browser {
        self.headers = vec![
            ("x-forwarded-for", ip.to_owned()),
            ("user-agent", agent.to_owned()),
        ];
        self
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().clone()
    }

    fn set_cookie(&self, value: Option<String>) {
        *self.cookie.lock() = value;
    }

    async fn send(&self, req: reqwest::RequestBuilder, cookie: Option<String>) -> Reply {
        let mut req = req;
        for (k, v) in &self.headers {
            req = req.header(*k, v.as_str());
        }
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

    fn cookie_header(&self) -> Option<String> {
        self.cookie().map(|c| format!("id={c}"))
    }

    async fn get(&self, path: &str) -> Reply {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, self.cookie_header()).await
    }

    async fn token(&self) -> String {
        let r = self.get("/form").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// A same-origin POST with a fresh token in the header.
    async fn post(&self, path: &str) -> Reply {
        let token = self.token().await;
        self.post_with(path, &[("x-csrf-token", &token), ("origin", &self.base)])
            .await
    }

    async fn post_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req, self.cookie_header()).await
    }

    async fn get_as(&self, path: &str, cookie: &str) -> Reply {
        let req = self.http.get(format!("{}{path}", self.base));
        let kept = self.cookie();
        let r = self.send(req, Some(cookie.to_owned())).await;
        self.set_cookie(kept);
        r
    }
}

// ---------------------------------------------------------------------
// Tampered, replayed and planted cookies.

async fn tampered_cookies_start_fresh_sessions(store: Store) {
    let server = Server::start(app(store, config(), AppState::default())).await;
    let b = Browser::new(&server);
    assert_eq!(b.post("/login/alice").await.body, "welcome alice");
    let value = b.cookie().expect("a cookie");
    let mut flipped = value.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ASCII");
    let forged = URL_SAFE_NO_PAD.encode([7u8; 32]);
    for tampered in [
        forged.clone(),
        value[..value.len() - 1].to_owned(),
        flipped,
        format!("{value}A"),
        format!("{value}{value}"),
        String::new(),
    ] {
        let r = b.get_as("/whoami", &format!("id={tampered}")).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "anonymous"),
            "{tampered:?}"
        );
    }
    assert_eq!(
        b.get("/whoami").await.body,
        "alice",
        "the real cookie still works"
    );
}

async fn a_cookie_resealed_with_another_key_is_refused(store: Store) {
    use covet::session::SessionStore as _;
    use covet::session::store::{Data, Record};
    let server = Server::start(app(store, config(), AppState::default())).await;
    let b = Browser::new(&server);
    // The attacker seals a session claiming to be alice with a key of
    // their own (for server stores: an id of a session that never was).
    let attacker = covet::session::CookieStore::new(covet::session::store::cookie::Key::generate());
    let mut data = Data::new();
    data.insert(
        "__covet".into(),
        serde_json::json!([null, null, null, "alice", null, null]),
    );
    let forged = attacker
        .create(&Record::new(
            data,
            std::time::SystemTime::now() + Duration::from_secs(3600),
        ))
        .await
        .expect("sealing");
    let r = b
        .get_as("/whoami", &format!("id={}", forged.expose()))
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "anonymous"));
}

async fn a_cookie_replayed_after_logout(store: Store) {
    let client_side = store.is_client_side();
    let server = Server::start(app(store, config(), AppState::default())).await;
    let b = Browser::new(&server);
    b.post("/login/alice").await;
    let stolen = format!("id={}", b.cookie().expect("a cookie"));
    assert_eq!(
        b.post("/logout").await.session_cookie().as_deref(),
        Some("")
    );
    let replay = b.get_as("/whoami", &stolen).await;
    if client_side {
        // Documented limit: a client-side session cannot be revoked before
        // the expiry sealed inside it.
        assert_eq!(replay.body, "alice");
    } else {
        assert_eq!(replay.body, "anonymous");
    }
}

async fn a_planted_unknown_id_is_never_adopted(store: Store) {
    let server = Server::start(app(store, config(), AppState::default())).await;
    let victim = Browser::new(&server);
    let planted = URL_SAFE_NO_PAD.encode([42u8; 32]);
    victim.set_cookie(Some(planted.clone()));
    assert_eq!(victim.post("/login/alice").await.body, "welcome alice");
    assert_ne!(victim.cookie().as_deref(), Some(planted.as_str()));
    let attacker = victim.get_as("/whoami", &format!("id={planted}")).await;
    assert_eq!(attacker.body, "anonymous");
}

async fn a_planted_valid_attacker_session_is_rotated_at_login(store: Store) {
    let server = Server::start(app(store, config(), AppState::default())).await;
    let attacker = Browser::new(&server);
    attacker.token().await; // an anonymous session with a CSRF secret
    let planted = attacker.cookie().expect("the attacker's session");
    // The victim's browser carries the attacker's cookie and logs in.
    let victim = Browser::new(&server);
    victim.set_cookie(Some(planted.clone()));
    assert_eq!(victim.post("/login/alice").await.body, "welcome alice");
    assert_ne!(victim.cookie().as_deref(), Some(planted.as_str()));
    assert_eq!(victim.get("/whoami").await.body, "alice");
    assert_eq!(
        attacker.get("/whoami").await.body,
        "anonymous",
        "fixation worked"
    );
}

async fn a_logout_racing_a_slow_request_sticks(store: Store) {
    let client_side = store.is_client_side();
    let state = AppState::default();
    let server = Arc::new(Server::start(app(store, config(), state.clone())).await);
    let b = Browser::new(&server);
    b.post("/login/alice").await;
    let before = format!("id={}", b.cookie().expect("a cookie"));
    let token = b.token().await;
    let slow = {
        let (b, origin) = (b.clone(), server.origin());
        tokio::spawn(async move {
            b.post_with("/slow", &[("x-csrf-token", &token), ("origin", &origin)])
                .await
        })
    };
    while state.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.post("/logout").await;
    state.release.notify_one();
    let late = slow.await.expect("task");
    assert_eq!(late.body, "slow done");
    if !client_side {
        assert_eq!(late.session_cookie().as_deref(), Some(""));
        assert_eq!(b.get_as("/whoami", &before).await.body, "anonymous");
    }
}

// ---------------------------------------------------------------------
// CSRF.

async fn forged_csrf_tokens_are_refused(store: Store) {
    let state = AppState::default();
    let server = Server::start(app(store, config(), state.clone())).await;
    let victim = Browser::new(&server);
    victim.post("/login/alice").await;
    let origin = server.origin();
    let good = victim.token().await;
    let other_session = Browser::new(&server).token().await;
    let bytes = URL_SAFE_NO_PAD.decode(&good).expect("base64");
    let secret: Vec<u8> = bytes[..32]
        .iter()
        .zip(&bytes[32..])
        .map(|(a, b)| a ^ b)
        .collect();
    let unmasked = URL_SAFE_NO_PAD.encode(&secret);
    let mut flipped = bytes.clone();
    flipped[40] ^= 1;
    let flipped = URL_SAFE_NO_PAD.encode(&flipped);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, CsrfRejection);
    let cases: [Case<'_>; 10] = [
        (
            "missing",
            vec![("origin", origin.as_str())],
            CsrfRejection::MissingToken,
        ),
        (
            "garbage",
            vec![("x-csrf-token", "garbage"), ("origin", origin.as_str())],
            CsrfRejection::InvalidToken,
        ),
        (
            "another session's",
            vec![
                ("x-csrf-token", other_session.as_str()),
                ("origin", origin.as_str()),
            ],
            CsrfRejection::InvalidToken,
        ),
        (
            "the unmasked secret",
            vec![
                ("x-csrf-token", unmasked.as_str()),
                ("origin", origin.as_str()),
            ],
            CsrfRejection::InvalidToken,
        ),
        (
            "a flipped bit",
            vec![
                ("x-csrf-token", flipped.as_str()),
                ("origin", origin.as_str()),
            ],
            CsrfRejection::InvalidToken,
        ),
        (
            "cross-site",
            vec![
                ("x-csrf-token", good.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            CsrfRejection::CrossSite,
        ),
        (
            "look-alike origin",
            vec![
                ("x-csrf-token", good.as_str()),
                ("origin", "http://127.0.0.1.evil.net"),
            ],
            CsrfRejection::OriginMismatch,
        ),
        (
            "another port",
            vec![
                ("x-csrf-token", good.as_str()),
                ("origin", "http://127.0.0.1:1"),
            ],
            CsrfRejection::OriginMismatch,
        ),
        (
            "null origin",
            vec![("x-csrf-token", good.as_str()), ("origin", "null")],
            CsrfRejection::NullOrigin,
        ),
        (
            "https, no origin, no referer",
            vec![
                ("x-csrf-token", good.as_str()),
                ("x-forwarded-proto", "https"),
            ],
            CsrfRejection::MissingReferer,
        ),
    ];
    for (what, headers, expected) in cases {
        let r = victim.post_with("/transfer", &headers).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains(expected.reason()), "{what}: {}", r.body);
    }
    assert_eq!(
        state.handled.load(Ordering::SeqCst),
        0,
        "a forged request reached the handler"
    );
    // A wrong Referer on HTTPS, then the right one.
    let https_origin = format!("https://{}", server.addr);
    let wrong = victim
        .post_with(
            "/transfer",
            &[
                ("x-csrf-token", &good),
                ("x-forwarded-proto", "https"),
                ("referer", "https://evil.test/page"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let referer = format!("{https_origin}/account");
    let right = victim
        .post_with(
            "/transfer",
            &[
                ("x-csrf-token", &good),
                ("x-forwarded-proto", "https"),
                ("referer", &referer),
            ],
        )
        .await;
    assert_eq!((right.status, right.body.as_str()), (200, "transferred: "));
    // A trusted origin, a same-site request, and the same token twice.
    for origin in ["https://admin.shop.test", origin.as_str()] {
        let r = victim
            .post_with(
                "/transfer",
                &[
                    ("x-csrf-token", &good),
                    ("origin", origin),
                    ("sec-fetch-site", "same-site"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{origin}: {}", r.body);
    }
}

async fn csrf_tokens_in_forms_and_bodies_handed_on(store: Store) {
    let state = AppState::default();
    let server = Server::start(app(store, config(), state.clone())).await;
    let b = Browser::new(&server);
    let token = b.token().await;
    let origin = server.origin();
    // URL-encoded form.
    let body = format!("amount=10&csrf_token={token}&to=bob");
    let r = b
        .send(
            b.http
                .post(format!("{origin}/transfer"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin.as_str())
                .body(body.clone()),
            b.cookie_header(),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, format!("transferred: {body}"))
    );
    // Multipart form.
    let boundary = "XyZ-covet-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n10\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n--{boundary}--\r\n"
    );
    let r = b
        .send(
            b.http
                .post(format!("{origin}/transfer"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .header("origin", origin.as_str())
                .body(body.clone()),
            b.cookie_header(),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, format!("transferred: {body}"))
    );
    // A wrong field value, a body past the limit, a garbled multipart body.
    let r = b
        .send(
            b.http
                .post(format!("{origin}/transfer"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin.as_str())
                .body("csrf_token=nope"),
            b.cookie_header(),
        )
        .await;
    assert_eq!(r.status, 403);
    // A body past the limit: refused with 413 as soon as its length is
    // known (the server may close before reading the rest, so the client
    // writes it on its own task).
    let big = format!("csrf_token={token}&pad={}", "x".repeat(1 << 20));
    let head = format!(
        "POST /transfer HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        b.cookie_header().unwrap_or_default(),
        big.len()
    );
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connecting");
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(big.as_bytes()).await;
    });
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut reply)).await;
    writer.abort();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    let r = b
        .send(
            b.http
                .post(format!("{origin}/transfer"))
                .header("content-type", "multipart/form-data; boundary=zz")
                .header("origin", origin.as_str())
                .body("--zz\r\nbroken"),
            b.cookie_header(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // An exempt webhook needs no token; GET, HEAD and OPTIONS are never refused.
    let hook = b
        .post_with("/webhooks/pay", &[("origin", "https://payments.test")])
        .await;
    assert_eq!(hook.status, 200);
    assert_eq!(b.get("/whoami").await.status, 200);
}

// ---------------------------------------------------------------------
// Header injection, oversize headers and sessions.

async fn raw(server: &Server, request: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connecting");
    tcp.write_all(request).await.expect("writing");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn injected_and_oversize_cookies_are_harmless(store: Store) {
    let server = Server::start(app(store, config(), AppState::default())).await;
    for cookie in [
        &b"id=abc\r\nSet-Cookie: admin=1"[..],
        b"id=\";evil\"; id=';'",
        b"id=\"quoted value\"",
        b"id=abc; Path=/; Domain=evil.test",
        b"id=%0d%0aSet-Cookie:%20x=y",
    ] {
        let mut req =
            b"GET /whoami HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nCookie: ".to_vec();
        req.extend_from_slice(cookie);
        req.extend_from_slice(b"\r\n\r\n");
        let reply = raw(&server, &req).await;
        let head = reply
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(!head.starts_with("http/1.1 500"), "{reply}");
        assert!(
            !head.contains("admin=1") && !head.contains("set-cookie: x=y"),
            "{reply}"
        );
        if head.starts_with("http/1.1 200") {
            assert!(reply.ends_with("anonymous"), "{reply}");
        }
    }
    // A megabyte of cookies: refused by the HTTP server, never a 500.
    let mut req =
        b"GET /whoami HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nCookie: id=".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    let reply = raw(&server, &req).await;
    assert!(
        !reply.starts_with("HTTP/1.1 500") && !reply.starts_with("HTTP/1.1 200"),
        "{}",
        &reply[..reply.len().min(200)]
    );
}

async fn a_session_cannot_grow_past_its_limit(store: Store) {
    let server = Server::start(app(
        store,
        config().with_max_size(2048),
        AppState::default(),
    ))
    .await;
    let b = Browser::new(&server);
    let chunk = "z".repeat(900);
    assert_eq!(b.post(&format!("/set/a/{chunk}")).await.status, 200);
    assert_eq!(b.post(&format!("/set/b/{chunk}")).await.status, 200);
    let r = b.post(&format!("/set/c/{chunk}")).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(b.get("/whoami").await.status, 200);
}

// ---------------------------------------------------------------------
// Hijacking: client binding.

async fn binding_logs_by_default_and_strict_drops_a_stolen_session(store: Store) {
    let store_is_client_side = store.is_client_side();
    let server = Server::start(app(store.clone(), config(), AppState::default())).await;
    let victim = Browser::new(&server).from("198.51.100.7", "firefox");
    victim.post("/login/alice").await;
    let stolen = format!("id={}", victim.cookie().expect("a cookie"));
    let thief = Browser::new(&server).from("203.0.113.9", "curl");
    assert_eq!(
        thief.get_as("/whoami", &stolen).await.body,
        "alice",
        "Log: noted, kept"
    );

    let strict = config().with_binding(Binding::Strict);
    let server = Server::start(app(store, strict, AppState::default())).await;
    let victim = Browser::new(&server).from("198.51.100.7", "firefox");
    victim.post("/login/alice").await;
    let stolen = format!("id={}", victim.cookie().expect("a cookie"));
    // Same /24 and agent: the same client.
    let moved = Browser::new(&server).from("198.51.100.200", "firefox");
    assert_eq!(moved.get_as("/whoami", &stolen).await.body, "alice");
    // The thief writes the victim's address leftmost; the proxy appended
    // the real one.
    let thief = Browser::new(&server).from("198.51.100.7, 203.0.113.9", "firefox");
    assert_eq!(thief.get_as("/whoami", &stolen).await.body, "anonymous");
    // Strict deleted the session: the stolen cookie is dead for everyone
    // (a client-side session cannot be deleted: documented).
    if !store_is_client_side {
        assert_eq!(victim.get("/whoami").await.body, "anonymous");
    }
}

macro_rules! attack_suite {
    ($name:ident, $store:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn store() -> Option<Store> {
                $store
            }

            attack_suite!(@cases
                tampered_cookies_start_fresh_sessions,
                a_cookie_resealed_with_another_key_is_refused,
                a_cookie_replayed_after_logout,
                a_planted_unknown_id_is_never_adopted,
                a_planted_valid_attacker_session_is_rotated_at_login,
                a_logout_racing_a_slow_request_sticks,
                forged_csrf_tokens_are_refused,
                csrf_tokens_in_forms_and_bodies_handed_on,
                injected_and_oversize_cookies_are_harmless,
                a_session_cannot_grow_past_its_limit,
                binding_logs_by_default_and_strict_drops_a_stolen_session,
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

attack_suite!(memory, stores::memory().await);
attack_suite!(cookie_encrypted, stores::cookie_encrypted().await);
#[cfg(feature = "redis")]
attack_suite!(redis_single, stores::redis_single().await);
#[cfg(feature = "sql-postgres")]
attack_suite!(sql_postgres, stores::sql_postgres().await);
#[cfg(feature = "sql-mysql")]
attack_suite!(sql_mysql, stores::sql_mysql().await);
#[cfg(feature = "sql-sqlite")]
attack_suite!(sql_sqlite, stores::sql_sqlite().await);

// ---------------------------------------------------------------------
// A store that is down.

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_is_a_500_without_the_handler_and_recovers() {
    let redis = match covet_test::RedisProcess::start() {
        Ok(r) => r,
        Err(e) if !covet_test::in_ci() => {
            eprintln!("no redis-server to start ({e}); skipping");
            return;
        }
        Err(e) => panic!("starting redis-server: {e}"),
    };
    let store = covet::session::RedisStore::builder()
        .command_timeout(Duration::from_millis(300))
        .connect(&redis.url())
        .await
        .expect("connecting");
    let state = AppState::default();
    let server = Server::start(app(Arc::new(store), config(), state.clone())).await;
    let b = Browser::new(&server);
    b.post("/login/alice").await;
    let token = b.token().await;
    let handled = state.handled.load(Ordering::SeqCst);
    redis.pause();
    let down = b.get("/whoami").await;
    assert_eq!(down.status, 500);
    let post = b
        .post_with(
            "/transfer",
            &[("x-csrf-token", &token), ("origin", &server.origin())],
        )
        .await;
    assert_eq!(post.status, 500, "{}", post.body);
    assert_eq!(
        state.handled.load(Ordering::SeqCst),
        handled,
        "a handler ran without its session"
    );
    redis.resume();
    let mut back = b.get("/whoami").await;
    for _ in 0..20 {
        if back.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        back = b.get("/whoami").await;
    }
    assert_eq!(
        (back.status, back.body.as_str()),
        (200, "alice"),
        "the same session continues"
    );
}

// ---------------------------------------------------------------------
// Security events.

/// Every event under `covet::session`, each as its formatted fields.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() != covet::session::EVENT_TARGET {
            return;
        }
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", field.name(), value));
            }
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0.lock().push(f.0);
    }
}

#[tokio::test]
async fn security_events_name_what_happened_and_never_carry_an_id_or_token() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this binary run on other threads without a subscriber:
    // a callsite they registered first may have cached "never interested"
    // before this one existed. Recompute every callsite's interest now.
    tracing::callsite::rebuild_interest_cache();

    let store = stores::memory().await.expect("memory");
    let server = Server::start(app(
        store.clone(),
        config().with_max_size(1024).with_binding(Binding::Strict),
        AppState::default(),
    ))
    .await;
    let b = Browser::new(&server).from("198.51.100.7", "firefox");
    let mut secrets = Vec::new();
    let token = b.token().await;
    secrets.push(token.clone());
    secrets.push(b.cookie().expect("anonymous"));
    b.post("/login/alice").await;
    secrets.push(b.cookie().expect("logged in"));
    b.post_with(
        "/transfer",
        &[("x-csrf-token", "forged"), ("origin", &server.origin())],
    )
    .await;
    b.post(&format!("/set/big/{}", "x".repeat(2000))).await;
    let thief = Browser::new(&server).from("203.0.113.9", "curl");
    thief.get_as("/whoami", &format!("id={}", secrets[2])).await;
    b.get_as("/whoami", "id=not-an-id").await;
    // Someone guessing ids from one address.
    let guesser = Browser::new(&server).from("192.0.2.66", "bot");
    for i in 0..25u8 {
        let guess = URL_SAFE_NO_PAD.encode([i; 32]);
        secrets.push(guess.clone());
        guesser.get_as("/whoami", &format!("id={guess}")).await;
    }
    let c = Browser::new(&server);
    c.post("/login/bob").await;
    secrets.push(c.cookie().expect("bob"));
    c.post("/logout").await;
    store.delete_user_sessions("alice").await.expect("revoking");

    let events = captured.0.lock().clone();
    for name in [
        "created",
        "rotated",
        "logged_in",
        "logged_out",
        "csrf_rejected",
        "oversized",
        "binding_mismatch",
        "malformed_cookie",
        "unknown_id",
        "guessing",
        "revoked",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.contains(&format!("event=\"{name}\""))),
            "no {name} event in {events:#?}"
        );
    }
    for e in &events {
        for secret in &secrets {
            assert!(
                !e.contains(secret.as_str()),
                "an event carries a secret: {e}"
            );
        }
        if e.contains("session=")
            && !e.contains("session=\"new\"")
            && !e.contains("session=\"none\"")
        {
            assert!(!e.contains("session=\"\""), "{e}");
        }
    }
}
