//! An axum app behind `SessionLayer` over a real `TcpListener`, driven by a
//! plain HTTP/1.1 client that keeps a one-cookie jar.
#![cfg(all(feature = "axum", feature = "memory"))]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use covet_session::{Error, MemoryStore, Session, SessionConfig, SessionLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn visit(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("visits")?.unwrap_or(0);
    session.insert("visits", n + 1)?;
    Ok(format!("visit {n}"))
}

async fn logout(session: Session) -> &'static str {
    session.clear();
    "bye"
}

async fn plain() -> &'static str {
    "plain"
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Status, Set-Cookie header (if any) and body of `GET path`.
async fn get_with(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let set_cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(str::to_owned);
    (status, set_cookie, body.to_owned())
}

#[tokio::test]
async fn visits_are_counted_across_real_requests() {
    let app = Router::new()
        .route("/", get(visit))
        .route("/logout", get(logout))
        .route("/plain", get(plain))
        .layer(
            SessionLayer::new(MemoryStore::new())
                .with_config(SessionConfig::default().with_secure(false)),
        );
    let addr = serve(app).await;

    let mut jar: Option<String> = None;
    for n in 0..3 {
        let (status, set_cookie, body) = get_with(addr, "/", jar.as_deref()).await;
        assert_eq!(status, 200);
        assert_eq!(body, format!("visit {n}"));
        if let Some(c) = set_cookie {
            jar = Some(c.split(';').next().unwrap().to_owned());
        }
    }
    let (_, set_cookie, body) = get_with(addr, "/plain", jar.as_deref()).await;
    assert_eq!((set_cookie, body.as_str()), (None, "plain"));

    let (_, removal, _) = get_with(addr, "/logout", jar.as_deref()).await;
    assert!(removal.unwrap().contains("Max-Age=0"));
    let (_, _, body) = get_with(addr, "/", jar.as_deref()).await;
    assert_eq!(body, "visit 0", "the cleared session is gone");
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500() {
    let addr = serve(Router::new().route("/", get(visit))).await;
    let (status, set_cookie, body) = get_with(addr, "/", None).await;
    assert_eq!(status, 500);
    assert_eq!(set_cookie, None);
    assert_eq!(body, "");
}
