//! End-to-end HTTP: serve an axum app on a real loopback listener and talk
//! to it with a real client that keeps cookies like a browser.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// An app served on `127.0.0.1` on a free port; the server task stops when
/// this is dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `app` on a fresh loopback listener.
    pub async fn start(app: axum::Router) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback listener");
        let addr = listener.local_addr().expect("listener address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serving the app");
        });
        TestServer { addr, task }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new browser: a client with its own cookie jar.
    pub fn browser(&self) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("building an HTTP client"),
            base: format!("http://{}", self.addr),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client with a cookie jar (cookies are kept and sent back as a browser
/// does; `Secure` cookies are only sent over HTTPS, so apps under test on
/// plain HTTP set `with_secure(false)`).
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
    base: String,
}

/// What a request returned.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every `Set-Cookie` header, in order.
    pub set_cookies: Vec<String>,
    /// The body as text.
    pub body: String,
}

impl Browser {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with an empty body.
    pub async fn post(&self, path: &str) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)))
            .await
    }

    /// A request without the cookie jar, with exactly the `Cookie` header
    /// given (or none): for replaying, forging or dropping cookies.
    pub async fn get_with_cookie(&self, path: &str, cookie: Option<&str>) -> Reply {
        let client = reqwest::Client::new();
        let mut req = client.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("sending the request");
        let status = resp.status().as_u16();
        let set_cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
            .collect();
        let body = resp.text().await.expect("reading the body");
        Reply {
            status,
            set_cookies,
            body,
        }
    }
}

/// The value of cookie `name` in a `Set-Cookie` header line, if it sets it.
pub fn cookie_value<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    let pair = set_cookie.split(';').next()?.trim();
    let (n, v) = pair.split_once('=')?;
    (n == name).then_some(v)
}

/// A `GET` route answering `body` with fixed `headers`, counting its runs
/// in `runs`.
pub fn fixed_route(
    headers: &'static [(&'static str, &'static str)],
    runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> axum::routing::MethodRouter {
    axum::routing::get(move || {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut r = axum::response::Response::new(axum::body::Body::from("body"));
            for (k, v) in headers {
                r.headers_mut().append(
                    axum::http::HeaderName::from_static(k),
                    axum::http::HeaderValue::from_static(v),
                );
            }
            r
        }
    })
}
