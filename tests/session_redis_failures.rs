//! A Redis session store that stops answering: requests that use the
//! session get an opaque 500 (never a hang or a panic), requests that do
//! not use it are unaffected, and sessions work again once Redis is back.
//! Runs its own `redis-server` on a free loopback port.

#![cfg(all(feature = "redis", feature = "axum"))]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use covet::session::{Error, RedisStore, Session, SessionConfig, SessionLayer};
use covet_test::RedisProcess;
use covet_test::http::TestServer;

async fn visit(session: Session) -> Result<String, Error> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(n.to_string())
}

fn redis() -> Option<RedisProcess> {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(!covet_test::in_ci(), "redis-server is not installed");
        return None;
    }
    Some(RedisProcess::start().expect("starting redis-server"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_an_opaque_500_and_sessions_recover() {
    let Some(server) = redis() else { return };
    let store = RedisStore::builder()
        .command_timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .expect("connecting to the test Redis");
    let app = Router::new()
        .route("/", get(visit))
        .route("/static", get(|| async { "no session" }))
        .layer(SessionLayer::new(store).with_config(SessionConfig::default().with_secure(false)));
    let http = TestServer::start(app).await;
    let browser = http.browser();
    assert_eq!(browser.get("/").await.body, "0");
    assert_eq!(browser.get("/").await.body, "1");

    server.pause();
    let started = Instant::now();
    let failed = browser.get("/").await;
    assert_eq!(failed.status, 500);
    assert!(failed.body.is_empty(), "opaque: {:?}", failed.body);
    assert!(failed.set_cookies.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the command timeout bounds the wait"
    );
    assert_eq!(browser.get("/static").await.body, "no session");

    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = browser.get("/").await;
        if r.status == 200 {
            assert_eq!(r.body, "2", "the session survived");
            break;
        }
        assert!(Instant::now() < deadline, "sessions never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
