//! Serving stale responses: the request's `max-stale`, and the response's
//! `stale-while-revalidate` and `stale-if-error`.
//!
//! The one-second sleeps here wait for real time: a `max-age=1` response
//! must go stale.

use crate::support::Within;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{App, cc_path};

#[tokio::test]
async fn max_stale_accepts_a_stale_response() {
    let app = App::start().await;
    let path = cc_path("maxstale", &["max-age=1"], &[]);
    app.get(&path).await;
    app.settled().within().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = app
        .get_with(&path, &[("cache-control", "max-stale=60")])
        .await;
    assert!(stale.is_hit(), "{}", stale.cache_status());
    assert!(
        stale.cache_status().contains("ttl=-"),
        "{}",
        stale.cache_status()
    );
    let any = app.get_with(&path, &[("cache-control", "max-stale")]).await;
    assert!(any.is_hit());
    assert_eq!(app.origin.count("maxstale"), 1);
    // must-revalidate forbids it.
    let strict = cc_path("strict", &["max-age=1, must-revalidate"], &[]);
    app.get(&strict).await;
    app.settled().within().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !app.get_with(&strict, &[("cache-control", "max-stale")])
            .await
            .is_hit()
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let app = App::start().await;
    let path = cc_path("swr", &["max-age=1, stale-while-revalidate=60"], &[]);
    app.get(&path).await;
    app.settled().within().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = app.get(&path).await;
    assert_eq!(stale.body, "swr #1 lang=-");
    assert!(stale.is_hit());
    assert!(
        stale
            .cache_status()
            .contains("detail=stale-while-revalidate")
    );
    // The background refresh, and the store of what it fetched.
    app.settled().within().await;
    assert_eq!(
        app.origin.count("swr"),
        2,
        "refreshed once in the background"
    );
    let fresh = app.get(&path).await;
    assert_eq!(fresh.body, "swr #2 lang=-");
    assert!(fresh.is_hit());
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() {
    let app = App::start().await;
    let path = cc_path("sie", &["max-age=1, stale-if-error=60"], &[]);
    app.get(&path).await;
    app.settled().within().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.origin.failing.store(true, Ordering::SeqCst);
    let r = app.get(&path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "sie #1 lang=-");
    assert_eq!(
        &r.cache_status()[..r.cache_status().find("; ttl").unwrap_or(0)],
        "covet; fwd=stale; fwd-status=503"
    );
    assert!(r.cache_status().ends_with("detail=stale-if-error"));
    // Without stale-if-error the failure reaches the client.
    let plain = cc_path("nosie", &["max-age=1"], &[]);
    app.origin.failing.store(false, Ordering::SeqCst);
    app.get(&plain).await;
    app.settled().within().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.origin.failing.store(true, Ordering::SeqCst);
    assert_eq!(app.get(&plain).await.status, 503);
}
