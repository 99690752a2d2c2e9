//! Conditional requests and revalidation: `304`s answered from a fresh
//! stored response, and stale or `no-cache` responses validated with the
//! origin.

use crate::support::Within;
use std::time::Duration;

use crate::support::{App, cc_path};

#[tokio::test]
async fn conditional_requests_get_304_from_a_fresh_stored_response() {
    let app = App::start().await;
    let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    let path = cc_path(
        "cond",
        &["max-age=60"],
        &[("etag", "\"v1\""), ("last-modified", modified)],
    );
    app.get(&path).await;
    app.settled().within().await;
    let nm = app.get_with(&path, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.headers["etag"], "\"v1\"");
    assert!(nm.is_hit());
    let weak = app
        .get_with(&path, &[("if-none-match", "\"x\", W/\"v1\"")])
        .await;
    assert_eq!(weak.status, 304);
    let other = app.get_with(&path, &[("if-none-match", "\"v2\"")]).await;
    assert_eq!(other.status, 200);
    let ims = app
        .get_with(&path, &[("if-modified-since", modified)])
        .await;
    assert_eq!(ims.status, 304);
    let older = app
        .get_with(
            &path,
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(older.status, 200);
    assert_eq!(app.origin.count("cond"), 1);
}

#[tokio::test]
async fn stale_responses_are_revalidated_and_a_304_freshens_them() {
    let app = App::start().await;
    let path = cc_path(
        "reval",
        &["max-age=1"],
        &[("etag", "\"r1\""), ("x-version", "1")],
    );
    app.get(&path).await;
    app.settled().within().await;
    // Real time: the max-age=1 response goes stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = app.get(&path).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, "reval #1 lang=-", "the stored body, validated");
    assert_eq!(
        second.cache_status(),
        "covet; fwd=stale; fwd-status=304; ttl=1; stored"
    );
    assert_eq!(app.origin.count("reval:304"), 1);
    assert_eq!(
        second.headers["x-validated"], "1",
        "headers updated from the 304"
    );
    assert_eq!(
        second.headers["x-version"], "1",
        "other stored headers kept"
    );
    let third = app.get(&path).await;
    assert!(third.is_hit(), "freshened: {}", third.cache_status());
    assert_eq!(third.headers["x-validated"], "1");
    assert_eq!(app.origin.count("reval:304"), 1);
}

#[tokio::test]
async fn no_cache_responses_are_revalidated_every_time() {
    let app = App::start().await;
    let path = cc_path("nocache", &["no-cache, max-age=60"], &[("etag", "\"n1\"")]);
    app.get(&path).await;
    app.settled().within().await;
    for i in 1..=2 {
        let r = app.get(&path).await;
        assert_eq!(r.body, "nocache #1 lang=-");
        assert!(
            r.cache_status().contains("fwd-status=304"),
            "{}",
            r.cache_status()
        );
        assert_eq!(app.origin.count("nocache:304"), i);
    }
}
