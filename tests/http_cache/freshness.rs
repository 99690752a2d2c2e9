//! How long a stored response is fresh: `Expires` in every date format,
//! `Age` from the origin, the `Last-Modified` heuristic, and what the
//! request's own directives ask for.

use crate::support::Within;
use std::time::{Duration, SystemTime};

use crate::support::{App, cc_path};

#[tokio::test]
async fn expires_in_three_date_formats_and_invalid_dates() {
    let app = App::start().await;
    let future = SystemTime::now() + Duration::from_secs(3600);
    let imf = httpdate::fmt_http_date(future);
    // RFC 850 and asctime forms of the same instant.
    let dt: Vec<&str> = imf.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    // dt = [Wkd, DD, Mon, YYYY, HH:MM:SS, GMT]
    let weekday_long = match dt[0] {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!(
        "{weekday_long}, {}-{}-{} {} GMT",
        dt[1],
        dt[2],
        &dt[3][2..],
        dt[4]
    );
    let day: u32 = dt[1].parse().expect("day");
    let asctime = format!("{} {} {:>2} {} {}", dt[0], dt[2], day, dt[4], dt[3]);
    for (name, expires) in [
        ("imf", imf.as_str()),
        ("rfc850", &rfc850),
        ("asctime", &asctime),
    ] {
        let path = cc_path(name, &[], &[("expires", expires)]);
        let first = app.get(&path).await;
        assert!(
            first.cache_status().contains("stored"),
            "{name} {expires}: {}",
            first.cache_status()
        );
        app.settled().within().await;
        assert!(app.get(&path).await.is_hit(), "{name}");
    }
    for (name, expires) in [
        ("exp-zero", "0"),
        ("exp-garbage", "tomorrow"),
        ("exp-past", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ] {
        let path = cc_path(name, &[], &[("expires", expires)]);
        app.get(&path).await;
        app.settled().within().await;
        assert!(!app.get(&path).await.is_hit(), "{name}");
        assert_eq!(app.origin.count(name), 2, "{name}");
    }
}

#[tokio::test]
async fn origin_age_makes_a_response_stale() {
    let app = App::start().await;
    // Age 100 with max-age 60: already stale when received.
    let path = cc_path("aged", &["max-age=60"], &[("age", "100")]);
    app.get(&path).await;
    app.settled().within().await;
    let second = app.get(&path).await;
    assert!(!second.is_hit(), "{}", second.cache_status());
    // Age 10 with max-age 60: fresh, and the served Age counts it.
    let path = cc_path("young", &["max-age=60"], &[("age", "10")]);
    app.get(&path).await;
    app.settled().within().await;
    let hit = app.get(&path).await;
    assert!(hit.is_hit());
    assert!(hit.age().expect("an Age header") >= 10);
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let app = App::start().await;
    let modified = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(10 * 86400));
    let path = cc_path("heur", &[], &[("last-modified", &modified)]);
    let first = app.get(&path).await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    app.settled().within().await;
    assert!(app.get(&path).await.is_hit());
}

#[tokio::test]
async fn request_directives() {
    let app = App::start().await;
    let path = cc_path("req", &["max-age=60"], &[]);
    // only-if-cached with nothing stored: 504.
    let r = app
        .get_with(&path, &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(app.origin.count("req"), 0);
    app.get(&path).await;
    app.settled().within().await;
    assert_eq!(
        app.get_with(&path, &[("cache-control", "only-if-cached")])
            .await
            .status,
        200
    );
    // no-cache and Pragma: no-cache go to the origin.
    assert!(
        !app.get_with(&path, &[("cache-control", "no-cache")])
            .await
            .is_hit()
    );
    app.settled().within().await;
    assert!(
        !app.get_with(&path, &[("pragma", "no-cache")])
            .await
            .is_hit()
    );
    app.settled().within().await;
    // Pragma is ignored when Cache-Control is present.
    assert!(
        app.get_with(
            &path,
            &[("pragma", "no-cache"), ("cache-control", "max-stale=0")]
        )
        .await
        .is_hit()
    );
    // max-age=0 wants a response no older than 0 s: our copy is older after 1 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !app.get_with(&path, &[("cache-control", "max-age=0")])
            .await
            .is_hit()
    );
    app.settled().within().await;
    // min-fresh beyond the remaining lifetime: forwarded.
    assert!(
        !app.get_with(&path, &[("cache-control", "min-fresh=3600")])
            .await
            .is_hit()
    );
    app.settled().within().await;
    assert!(
        app.get_with(&path, &[("cache-control", "min-fresh=10")])
            .await
            .is_hit()
    );
    // no-store: served from cache if fresh, but never stores.
    let fresh = cc_path("req-nostore", &["max-age=60"], &[]);
    app.get_with(&fresh, &[("cache-control", "no-store")]).await;
    app.settled().within().await;
    assert!(!app.get(&fresh).await.is_hit());
}
