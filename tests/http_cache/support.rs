//! What the topic modules share: the counting origin and its handlers,
//! [`App`] (that origin behind a layer, with a client), and [`Reply`] with
//! the plain-request helpers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use covet::cache::Cache;
use covet::cache::http::{CachePolicy, HttpCacheLayer};
use covet_test::http::TestServer;

#[derive(Clone, Default)]
pub(crate) struct Origin {
    counts: Arc<parking_lot::Mutex<HashMap<String, usize>>>,
    pub(crate) failing: Arc<AtomicBool>,
    pub(crate) release: Arc<tokio::sync::Notify>,
}

impl Origin {
    fn hit(&self, name: &str) -> usize {
        let mut c = self.counts.lock();
        let n = c.entry(name.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    pub(crate) fn count(&self, name: &str) -> usize {
        self.counts.lock().get(name).copied().unwrap_or(0)
    }
}

fn resp(headers: &[(&str, &str)], body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    for (n, v) in headers {
        r.headers_mut().append(
            header::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    r
}

/// `/cc/{name}?cc=...` answers with the given Cache-Control lines (split on
/// `;;`), and extra headers from the other query parameters.
async fn configurable(
    State(o): State<Origin>,
    Path(name): Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    req_headers: HeaderMap,
) -> Response {
    let n = o.hit(&name);
    let mut headers: Vec<(String, String)> = Vec::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        if k == "cc" {
            for line in v.split(";;") {
                headers.push(("cache-control".into(), line.to_owned()));
            }
        } else {
            headers.push((k.to_owned(), v));
        }
    }
    let etag = headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone());
    if let (Some(etag), Some(inm)) = (etag, req_headers.get(header::IF_NONE_MATCH))
        && inm.to_str().ok() == Some(etag.as_str())
    {
        let validations = o.hit(&format!("{name}:304")).to_string();
        let mut refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // A header only the 304s carry: the stored response must take it.
        refs.push(("x-validated", validations.as_str()));
        let mut r = resp(&refs, String::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    if o.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lang = req_headers
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    resp(&refs, format!("{name} #{n} lang={lang}"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 query")
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL for `/cc/{name}` with Cache-Control lines and extra headers.
pub(crate) fn cc_path(name: &str, cc: &[&str], extra: &[(&str, &str)]) -> String {
    let mut q = Vec::new();
    if !cc.is_empty() {
        q.push(format!("cc={}", enc(&cc.join(";;"))));
    }
    for (k, v) in extra {
        q.push(format!("{k}={}", enc(v)));
    }
    format!("/cc/{name}?{}", q.join("&"))
}

async fn slow(State(o): State<Origin>) -> Response {
    let n = o.hit("slow");
    // A slow origin: concurrent requests arrive while this one is in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    resp(&[("cache-control", "max-age=60")], format!("slow #{n}"))
}

async fn big(State(o): State<Origin>) -> Response {
    o.hit("big");
    resp(&[("cache-control", "max-age=60")], "x".repeat(300 * 1024))
}

/// Sends one chunk, waits for the test to say go, then ends.
async fn stream(State(o): State<Origin>) -> Response {
    o.hit("stream");
    let release = o.release.clone();
    let chunks = futures_util::stream::unfold(0u8, move |state| {
        let release = release.clone();
        async move {
            match state {
                0 => Some((Ok::<_, Infallible>(bytes::Bytes::from_static(b"first;")), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(bytes::Bytes::from_static(b"second")), 2))
                }
                _ => None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(chunks));
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("max-age=60"));
    r
}

/// Server-sent events: one event, then the rest once the test says go.
async fn events(State(o): State<Origin>) -> impl IntoResponse {
    o.hit("events");
    let release = o.release.clone();
    let events = futures_util::stream::unfold(0u8, move |state| {
        let release = release.clone();
        async move {
            match state {
                0 => Some((
                    Ok::<_, Infallible>(axum::response::sse::Event::default().data("one")),
                    1,
                )),
                1 => {
                    release.notified().await;
                    Some((Ok(axum::response::sse::Event::default().data("two")), 2))
                }
                _ => None,
            }
        }
    });
    axum::response::sse::Sse::new(events)
}

async fn bypass(State(o): State<Origin>) -> impl IntoResponse {
    let n = o.hit("bypass");
    (
        axum::Extension(CachePolicy::Bypass),
        [("cache-control", "max-age=60")],
        format!("bypass #{n}"),
    )
}

async fn opted_in(State(o): State<Origin>) -> impl IntoResponse {
    let n = o.hit("opted-in");
    (
        axum::Extension(CachePolicy::Store),
        format!("opted-in #{n}"),
    )
}

async fn report(State(o): State<Origin>) -> String {
    let n = o.hit("report");
    format!("report #{n}")
}

async fn write(State(o): State<Origin>, Path(name): Path<String>) -> Response {
    o.hit(&format!("write:{name}"));
    resp(
        &[
            ("location", "/cc/located"),
            ("content-location", "http://other.test/cc/foreign"),
        ],
        "written".into(),
    )
}

async fn failing_write(State(o): State<Origin>) -> Response {
    o.hit("failing-write");
    (StatusCode::INTERNAL_SERVER_ERROR, "no").into_response()
}

/// The counting origin behind a layer (configured by the test), with a
/// second layer of its own on `/report`, served on a loopback listener.
pub(crate) struct App {
    pub(crate) server: TestServer,
    pub(crate) origin: Origin,
    pub(crate) cache: Cache,
    pub(crate) client: reqwest::Client,
    /// The outer layer, kept to wait on what it stores.
    layer: HttpCacheLayer,
    /// The `/report` route's own layer (inside the outer one).
    report_layer: HttpCacheLayer,
}

impl App {
    pub(crate) async fn start() -> App {
        App::with(Cache::memory(), |l| l).await
    }

    pub(crate) async fn with(
        cache: Cache,
        configure: impl FnOnce(HttpCacheLayer) -> HttpCacheLayer,
    ) -> App {
        let origin = Origin::default();
        let layer = configure(HttpCacheLayer::new(cache.clone()));
        let report_layer = HttpCacheLayer::new(cache.clone()).default_ttl(Duration::from_secs(30));
        let app = Router::new()
            .route("/cc/{name}", get(configurable).post(write).delete(write))
            .route("/slow", get(slow))
            .route("/big", get(big))
            .route("/stream", get(stream))
            .route("/events", get(events))
            .route("/bypass", get(bypass))
            .route("/opted-in", get(opted_in))
            .route("/report", get(report).layer(report_layer.clone()))
            .route("/failing-write", axum::routing::post(failing_write))
            .layer(layer.clone())
            .with_state(origin.clone());
        App {
            server: TestServer::start(app).await,
            origin,
            cache,
            client: reqwest::Client::new(),
            layer,
            report_layer,
        }
    }

    /// Resolves once both layers have stored (or dropped) every response
    /// they began storing and finished every background refresh.
    pub(crate) async fn settled(&self) {
        self.layer.settled().within().await;
        self.report_layer.settled().within().await;
    }

    pub(crate) async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.client.request(method, self.server.url(path));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        send(r).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.req("GET", path, &[]).await
    }

    pub(crate) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.req("GET", path, headers).await
    }
}

/// A whole response: status, headers and the body as text.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// A header's value, if present and visible ASCII.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    pub(crate) fn is_hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }

    pub(crate) fn age(&self) -> Option<u64> {
        self.header("age").and_then(|v| v.parse().ok())
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect()
    }
}

/// A client that does not follow redirects (a cached 3xx is what a test
/// looks at).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

/// `GET path` with `headers`, on a fresh client.
pub(crate) async fn fetch(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(server.url(path));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    send(req).await
}

/// A bound on waiting: a store or refresh that never ends fails the test
/// instead of hanging it.
pub(crate) trait Within: std::future::Future + Sized {
    async fn within(self) -> Self::Output {
        tokio::time::timeout(std::time::Duration::from_secs(10), self)
            .await
            .expect("the layer did not settle within 10 s")
    }
}

impl<F: std::future::Future> Within for F {}
