//! The load generator the HTTP benchmarks share: apps served with
//! `axum::serve` on loopback, driven by hyper 1 HTTP/1.1 keep-alive
//! connections.

#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` on a fresh loopback port (`TCP_NODELAY`).
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    let listener = listener.tap_io(|tcp| {
        tcp.set_nodelay(true)
            .expect("TCP_NODELAY on the server side");
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("axum::serve") });
    addr
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

/// A response, read to the end.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Conn {
    /// Opens a connection to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .set_nodelay(true)
            .expect("TCP_NODELAY on the client side");
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1 handshake");
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = conn.await;
        });
        Conn { sender }
    }

    /// `GET path`, with `cookie` as the `Cookie` header if given.
    pub(crate) async fn get(&mut self, path: &str, cookie: Option<&HeaderValue>) -> Reply {
        let mut req = Request::get(path).header(header::HOST, "127.0.0.1");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie.clone());
        }
        let req = req.body(Full::default()).expect("request");
        self.send(req).await
    }

    /// `POST path` with a URL-encoded form `body`, as a browser on the
    /// same origin sends it.
    pub(crate) async fn post_form(
        &mut self,
        path: &str,
        cookie: Option<&HeaderValue>,
        body: Bytes,
    ) -> Reply {
        let mut req = Request::post(path)
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "http://127.0.0.1");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie.clone());
        }
        let req = req.body(Full::new(body)).expect("request");
        self.send(req).await
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Reply {
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// Writes a bench's interleaved rounds beside criterion's output, at
/// `<target>/criterion/<group>/interleaved.json` (`[{name, best,
/// median}]`, requests per second), for `examples/plot_bench.rs`.
pub(crate) fn save_rounds(group: &str, rows: &[(&str, f64, f64)]) {
    let root = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()),
            )
            .join("criterion")
        });
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(name, best, median)| serde_json::json!({ "name": name, "best": best, "median": median }))
        .collect();
    let dir = root.join(group);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("interleaved.json"),
            serde_json::Value::Array(rows).to_string(),
        )
    });
    if let Err(e) = written {
        eprintln!(
            "could not save the interleaved rounds under {}: {e}",
            dir.display()
        );
    }
}
