//! Backend calls in tracing spans: the backend, the operation, the
//! namespace, the outcome and the duration, and keys only as a hash.

#![cfg(feature = "redis")]

use std::io::Write;
use std::sync::Arc;

use covet::cache::{Cache, RedisBackend};
use covet_test::{Server, require, unique_namespace};
use parking_lot::Mutex;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A debug subscriber for this thread that writes span closes to memory.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn backend_calls_run_in_spans_that_hash_keys() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let (captured, guard) = capture();
    let namespace = unique_namespace("covet-spans");
    let cache = Cache::builder()
        .backend(RedisBackend::connect(&url).await.expect("Redis"))
        .namespace(namespace.clone())
        .build()
        .expect("cache");
    // Expiring: nothing of this test stays on the shared server.
    cache
        .set(
            "secret-key-42",
            &7u32,
            Some(std::time::Duration::from_secs(60)),
        )
        .await
        .expect("set");
    let got: Option<u32> = cache.get("secret-key-42").await.expect("get");
    assert_eq!(got, Some(7));
    drop(guard);
    let out = String::from_utf8(captured.0.lock().clone()).expect("UTF-8");
    let closes: Vec<&str> = out.lines().filter(|l| l.contains("close")).collect();
    let cache_span = |op: &str| {
        closes
            .iter()
            .find(|l| l.contains("covet.cache") && l.contains(&format!("op=\"{op}\"")))
            .unwrap_or_else(|| panic!("no covet.cache span for {op} in:\n{out}"))
            .to_string()
    };
    for op in ["set", "get"] {
        let span = cache_span(op);
        assert!(span.contains("backend=\"redis\""), "{span}");
        assert!(span.contains(&namespace), "{span}");
        assert!(span.contains("outcome=\"ok\""), "{span}");
        assert!(span.contains("micros="), "{span}");
        assert!(span.contains("key=\""), "{span}");
    }
    assert!(
        closes
            .iter()
            .any(|l| l.contains("covet.backend") && l.contains("backend=\"redis\"")),
        "the Redis command's own span:\n{out}"
    );
    assert!(!out.contains("secret-key-42"), "a key in the trace:\n{out}");
}

/// Session loads and saves run in `covet.session` spans that carry a
/// salted hash of the id, never the id.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "current_thread")]
async fn session_spans_carry_a_hash_of_the_id() {
    use axum::routing::get;
    use covet::session::{MemoryStore, Session, SessionConfig, SessionLayer};

    let (captured, guard) = capture();
    let app = axum::Router::new()
        .route(
            "/visit",
            get(|session: Session| async move {
                let n: u64 = session.get("n").ok().flatten().unwrap_or(0);
                session.insert("n", n + 1).expect("insert");
                n.to_string()
            }),
        )
        .layer(
            SessionLayer::new(MemoryStore::new())
                .with_config(SessionConfig::default().with_secure(false)),
        );
    let server = covet_test::http::TestServer::start(app).await;
    let http = reqwest::Client::new();
    let first = http.get(server.url("/visit")).send().await.expect("visit");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let id = cookie.trim_start_matches("id=").to_owned();
    let second = http
        .get(server.url("/visit"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("visit");
    assert_eq!(second.text().await.expect("body"), "1");
    drop(guard);
    let out = String::from_utf8(captured.0.lock().clone()).expect("UTF-8");
    let load = out
        .lines()
        .find(|l| {
            l.contains("covet.session") && l.contains("op=\"load\"") && l.contains("session=")
        })
        .unwrap_or_else(|| panic!("no load span with a session in:\n{out}"));
    assert!(!load.contains(&id), "{load}");
    assert!(
        out.lines().any(|l| l.contains("covet.session")
            && l.contains("op=\"save\"")
            && l.contains("outcome=\"saved\"")),
        "no save span in:\n{out}"
    );
    assert!(!out.contains(&id), "the session id in the trace:\n{out}");
}
