//! What is stored and served: explicit freshness, what forbids storing,
//! `Set-Cookie` and `Authorization`, `HEAD` from a stored `GET`, and
//! concurrent misses collapsed into one origin request.

use crate::support::Within;
use std::sync::Arc;

use covet::cache::Cache;

use crate::support::{App, cc_path};

#[tokio::test]
async fn max_age_is_stored_and_served_with_age_and_cache_status() {
    let app = App::start().await;
    let path = cc_path("a", &["max-age=60"], &[]);
    let first = app.get(&path).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "a #1 lang=-");
    assert_eq!(
        first.cache_status(),
        "covet; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    app.settled().within().await;
    let second = app.get(&path).await;
    assert_eq!(second.body, "a #1 lang=-");
    assert!(second.is_hit(), "{}", second.cache_status());
    assert!(second.cache_status().starts_with("covet; hit; ttl="));
    assert_eq!(second.age(), Some(0));
    assert_eq!(app.origin.count("a"), 1);
    let stats = app.cache.stats();
    assert_eq!((stats.http_hits, stats.http_misses), (1, 1));
}

#[tokio::test]
async fn responses_that_forbid_storing_are_not_stored() {
    let app = App::start().await;
    for (name, cc) in [
        ("no-store", "no-store, max-age=60"),
        ("private", "private, max-age=60"),
        ("plain", ""),
        ("bad", "max-age=abc"),
        ("neg", "max-age=-5"),
        ("zero", "max-age=0"),
    ] {
        let ccs: Vec<&str> = if cc.is_empty() { vec![] } else { vec![cc] };
        let path = cc_path(name, &ccs, &[]);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("fwd=uri-miss"),
            "{name}: {}",
            first.cache_status()
        );
        assert!(
            !first.cache_status().contains("stored"),
            "{name}: {}",
            first.cache_status()
        );
        app.settled().within().await;
        let second = app.get(&path).await;
        assert!(!second.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 2, "{name}");
    }
}

#[tokio::test]
async fn several_cache_control_lines_quoted_values_and_unknown_directives() {
    let app = App::start().await;
    for (name, ccs) in [
        ("multi", vec!["public", "max-age=60"]),
        ("quoted", vec!["max-age=\"60\""]),
        ("unknown", vec!["x-foo=\"a, b\", max-age=60, community=UCI"]),
        ("case", vec!["MAX-AGE=60"]),
        ("first-wins", vec!["max-age=60", "max-age=0"]),
    ] {
        let path = cc_path(name, &ccs, &[]);
        app.get(&path).await;
        app.settled().within().await;
        assert!(app.get(&path).await.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 1, "{name}");
    }
    // An s-maxage wins over max-age for a shared cache.
    let path = cc_path("smax", &["max-age=0, s-maxage=60"], &[]);
    app.get(&path).await;
    app.settled().within().await;
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test]
async fn set_cookie_responses_are_not_stored_unless_allowed() {
    let app = App::start().await;
    let path = cc_path(
        "cookie",
        &["public, max-age=60"],
        &[("set-cookie", "sid=secret")],
    );
    let first = app.get(&path).await;
    assert!(first.cache_status().contains("detail=set-cookie"));
    app.settled().within().await;
    let second = app.get(&path).await;
    assert!(!second.is_hit());
    assert_eq!(app.origin.count("cookie"), 2);

    let allowed = App::with(Cache::memory(), |l| l.allow_set_cookie(true)).await;
    let first = allowed.get(&path).await;
    assert_eq!(
        first.headers["set-cookie"], "sid=secret",
        "the first client gets its cookie"
    );
    allowed.settled().within().await;
    let second = allowed.get(&path).await;
    assert!(second.is_hit());
    assert!(
        second.headers.get("set-cookie").is_none(),
        "never replayed to others"
    );
    // Only an explicitly shareable response is stored, even when allowed.
    let implicit = cc_path(
        "cookie-implicit",
        &["max-age=60"],
        &[("set-cookie", "sid=x")],
    );
    let first = allowed.get(&implicit).await;
    assert!(
        first.cache_status().contains("detail=set-cookie"),
        "{}",
        first.cache_status()
    );
    allowed.settled().within().await;
    assert!(!allowed.get(&implicit).await.is_hit());
}

#[tokio::test]
async fn authorization_needs_an_explicitly_shareable_response() {
    let app = App::start().await;
    let auth = [("authorization", "Bearer alice")];
    let private = cc_path("auth", &["max-age=60"], &[]);
    app.get_with(&private, &auth).await;
    app.settled().within().await;
    assert!(!app.get_with(&private, &auth).await.is_hit());
    for (name, cc, stored) in [
        ("auth-public", "public, max-age=60", true),
        ("auth-smax", "s-maxage=60", true),
        // must-revalidate alone is not explicit enough by default.
        ("auth-mr", "max-age=60, must-revalidate", false),
    ] {
        let path = cc_path(name, &[cc], &[]);
        app.get_with(&path, &auth).await;
        app.settled().within().await;
        assert_eq!(app.get_with(&path, &auth).await.is_hit(), stored, "{name}");
    }
    // A response stored without Authorization is not served to a request with it.
    let shared = cc_path("auth-shared", &["max-age=60"], &[]);
    app.get(&shared).await;
    app.settled().within().await;
    assert!(app.get(&shared).await.is_hit());
    assert!(!app.get_with(&shared, &auth).await.is_hit());

    // RFC 9111 as written: must-revalidate is enough (§3.5).
    let rfc = App::with(Cache::memory(), |l| {
        l.private_requests(covet::cache::http::PrivateRequests::Rfc9111)
    })
    .await;
    let path = cc_path("auth-mr", &["max-age=60, must-revalidate"], &[]);
    rfc.get_with(&path, &auth).await;
    rfc.settled().within().await;
    assert!(rfc.get_with(&path, &auth).await.is_hit());
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let app = App::start().await;
    let path = cc_path("head", &["max-age=60"], &[]);
    let get = app.get(&path).await;
    app.settled().within().await;
    let head = app.req("HEAD", &path, &[]).await;
    assert!(head.is_hit());
    assert!(head.body.is_empty());
    assert_eq!(
        head.headers.get("content-length"),
        get.headers.get("content-length")
    );
    assert_eq!(app.origin.count("head"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_go_to_the_origin_once() {
    let app = Arc::new(App::start().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.get("/slow").await }));
    }
    let mut collapsed = 0;
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.body, "slow #1");
        if r.cache_status().contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(app.origin.count("slow"), 1);
    assert!(collapsed >= 1, "followers say so");
}
