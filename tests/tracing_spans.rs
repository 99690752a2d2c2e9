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

#[tokio::test(flavor = "current_thread")]
async fn backend_calls_run_in_spans_that_hash_keys() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let namespace = unique_namespace("covet-spans");
    let cache = Cache::builder()
        .backend(RedisBackend::connect(&url).await.expect("Redis"))
        .namespace(namespace.clone())
        .build()
        .expect("cache");
    cache.set("secret-key-42", &7u32, None).await.expect("set");
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
