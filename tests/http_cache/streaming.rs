//! Bodies on their way through: over the size limit (passed on, not
//! stored), streamed without being held back, and server-sent events.

use crate::support::Within;
use std::time::Duration;

use covet::cache::Cache;

use crate::support::App;

#[tokio::test]
async fn bodies_over_the_limit_stream_through_unstored() {
    let app = App::with(Cache::memory(), |l| l.max_body_size(64 * 1024)).await;
    let r = app.get("/big").await;
    assert_eq!(r.body.len(), 300 * 1024);
    assert!(
        r.cache_status().contains("detail=too-large"),
        "{}",
        r.cache_status()
    );
    app.settled().within().await;
    let again = app.get("/big").await;
    assert_eq!(again.body.len(), 300 * 1024);
    assert!(!again.is_hit());
    assert_eq!(app.origin.count("big"), 2);
}

#[tokio::test]
async fn streaming_responses_are_not_held_back() {
    let app = App::start().await;
    let resp = app
        .client
        .get(app.server.url("/stream"))
        .send()
        .await
        .expect("request");
    let mut resp = resp;
    // The first chunk arrives while the handler still waits: nothing buffers it.
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first chunk came through before the body ended")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"first;");
    app.origin.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.expect("chunk") {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second");
    app.settled().within().await;
    // Stored once it ended within the limit.
    let again = app.get("/stream").await;
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(again.body, "first;second");
}

#[tokio::test]
async fn server_sent_events_stream_through() {
    let app = App::start().await;
    let mut resp = app
        .client
        .get(app.server.url("/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let status = resp.headers()["cache-status"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(status.contains("fwd=uri-miss"), "{status}");
    assert!(
        !status.contains("stored"),
        "an event stream is not cacheable: {status}"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first event came through while the stream was open")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"data: one\n\n");
    app.origin.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.expect("chunk") {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: two\n\n");
    assert_eq!(app.origin.count("events"), 1);
}
