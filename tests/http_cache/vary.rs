//! `Vary`: one stored variant per value of the named request headers, and
//! `Vary: *` never served from the cache.

use crate::support::Within;
use crate::support::{App, cc_path};

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let app = App::start().await;
    let path = cc_path("vary", &["max-age=60"], &[("vary", "Accept-Language")]);
    let en = app.get_with(&path, &[("accept-language", "en")]).await;
    assert_eq!(en.body, "vary #1 lang=en");
    app.settled().within().await;
    let fr = app.get_with(&path, &[("accept-language", "fr")]).await;
    assert_eq!(fr.body, "vary #2 lang=fr");
    assert!(
        fr.cache_status().contains("fwd=vary-miss"),
        "{}",
        fr.cache_status()
    );
    app.settled().within().await;
    let en2 = app.get_with(&path, &[("accept-language", "en")]).await;
    assert_eq!(en2.body, "vary #1 lang=en");
    assert!(en2.is_hit());
    let fr2 = app.get_with(&path, &[("accept-language", "fr")]).await;
    assert_eq!(fr2.body, "vary #2 lang=fr");
    assert!(fr2.is_hit());
    let none = app.get(&path).await;
    assert!(!none.is_hit());
    assert_eq!(app.origin.count("vary"), 3);

    let star = cc_path("star", &["max-age=60"], &[("vary", "*")]);
    app.get(&star).await;
    app.settled().within().await;
    assert!(!app.get(&star).await.is_hit());
    assert_eq!(app.origin.count("star"), 2);
}
