//! The demo in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free loopback port) against the demo
//! app on another. `scripts/test` installs Debian's `chromium` and
//! `chromium-driver` when they are missing; without them these tests fail
//! under `CI=true` and are skipped elsewhere.
//!
//! When a check fails, a screenshot of the page goes to
//! `target/browser-screenshots/<test>.png`.

#![cfg(feature = "axum")]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/demo/app.rs"]
mod demo;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use covet_test::http::TestServer;
use covet_test::{free_port, in_ci};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or `None` (skipped) when the browser is not
/// installed outside CI.
async fn driver() -> Option<Driver> {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            !in_ci(),
            "{CHROMIUM} and {CHROMEDRIVER} are required under CI=true (scripts/test installs them)"
        );
        eprintln!("skipping: no {CHROMIUM} / {CHROMEDRIVER}");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(driver)
}

/// A new headless browser (its own profile: its own cookies).
async fn browser(driver: &Driver) -> Client {
    let profile = tempfile::tempdir().expect("profile dir").keep();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("an object")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(caps);
    let mut tries = 0;
    loop {
        match builder.connect(&driver.url).await {
            Ok(c) => return c,
            Err(e) if tries < 3 => {
                tries += 1;
                eprintln!("starting a browser failed ({e}); again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("starting a browser: {e}"),
        }
    }
}

/// Runs `check` against `client`; when it fails, saves a screenshot of
/// the page under `target/browser-screenshots/<name>.png` first.
async fn with_screenshot<F: Future<Output = ()>>(name: &str, client: &Client, check: F) {
    if let Err(panic) = std::panic::AssertUnwindSafe(check).catch_unwind().await {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        if std::fs::create_dir_all(&dir).is_ok()
            && let Ok(png) = client.screenshot().await
        {
            let path = dir.join(format!("{name}.png"));
            if std::fs::write(&path, png).is_ok() {
                eprintln!("screenshot: {}", path.display());
            }
        }
        std::panic::resume_unwind(panic);
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// The text of `css`, or `None` while it is not there (a page being
/// replaced has no elements for a moment).
async fn try_text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// The flash messages on the page (none while it is being replaced).
async fn flashes(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(".flash")).await.unwrap_or_default() {
        if let Ok(t) = e.text().await {
            out.push(t);
        }
    }
    out
}

/// Waits (up to 10 s) until `probe` gives `want`: a click on a form
/// returns before the next page has loaded.
async fn eventually<T, F, Fut>(c: &Client, want: T, probe: F)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn(Client) -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = probe(c.clone()).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "got {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the page at `path` and these flash messages on it.
async fn arrive(c: &Client, path: &str, messages: &[&str]) {
    let want: Vec<String> = messages.iter().map(|m| (*m).to_owned()).collect();
    eventually(c, (path.to_owned(), want), |c| async move {
        let at = c
            .current_url()
            .await
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        (at, flashes(&c).await)
    })
    .await;
}

async fn log_in(c: &Client, server: &TestServer, user: &str) {
    c.goto(&server.url("/login")).await.expect("login page");
    c.find(Locator::Css("#user"))
        .await
        .expect("name field")
        .send_keys(user)
        .await
        .expect("typing");
    click(c, "#login").await;
}

/// Starts the demo, chromedriver and a browser; `None` when skipped.
async fn setup() -> Option<(Driver, TestServer)> {
    let driver = driver().await?;
    let server = TestServer::start(demo::app(demo::Setup::in_memory())).await;
    Some((driver, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_shows_the_welcome_once_and_the_cookie_is_locked_down() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let c = browser(&driver).await;
    with_screenshot("login", &c, async {
        log_in(&c, &server, "alice").await;
        arrive(&c, "/", &["Welcome, alice! You are logged in."]).await;
        assert_eq!(text(&c, "#who").await, "alice");
        // Shown once: gone on the next page.
        c.refresh().await.unwrap();
        assert!(flashes(&c).await.is_empty());

        // What the browser holds: an HttpOnly, SameSite=Lax session
        // cookie for the whole site, and nothing else.
        let cookies = c.get_all_cookies().await.unwrap();
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let id = &cookies[0];
        assert_eq!(id.name(), "id");
        assert_eq!(id.http_only(), Some(true));
        assert_eq!(id.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(id.path(), Some("/"));
        // Plain HTTP on loopback: the demo turns `Secure` off.
        assert_ne!(id.secure(), Some(true));
        assert!(id.value().len() >= 40, "{}", id.value());
    })
    .await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_follows_the_visitor_across_pages() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let c = browser(&driver).await;
    with_screenshot("cart", &c, async {
        c.goto(&server.url("/catalogue")).await.unwrap();
        click(&c, "#add-1").await;
        arrive(&c, "/catalogue", &["Added Espresso beans to the cart."]).await;
        click(&c, "#add-3").await;
        arrive(&c, "/catalogue", &["Added Pour-over kettle to the cart."]).await;
        assert_eq!(text(&c, "#nav-cart").await, "Cart (2)");
        // Another page, then the cart.
        c.goto(&server.url("/stats")).await.unwrap();
        assert_eq!(text(&c, "#nav-cart").await, "Cart (2)");
        c.goto(&server.url("/cart")).await.unwrap();
        assert_eq!(
            text(&c, "#cart-items").await,
            "Espresso beans\nPour-over kettle"
        );
        // The second catalogue view came from the cache.
        c.goto(&server.url("/catalogue")).await.unwrap();
        assert!(text(&c, "#product-1").await.contains("HIT"));
    })
    .await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_csrf_token_is_refused() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let c = browser(&driver).await;
    with_screenshot("csrf", &c, async {
        c.goto(&server.url("/login")).await.unwrap();
        // Flip the token the form carries, as a forged form would.
        c.execute(
            "const t = document.getElementById('csrf-token');
             t.value = t.value.slice(0, -4) + (t.value.endsWith('AAAA') ? 'BBBB' : 'AAAA');",
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Css("#user"))
            .await
            .unwrap()
            .send_keys("mallory")
            .await
            .unwrap();
        click(&c, "#login").await;
        eventually(&c, true, |c| async move {
            try_text(&c, "body")
                .await
                .is_some_and(|b| b.contains("CSRF token invalid"))
        })
        .await;
        // Not logged in.
        c.goto(&server.url("/")).await.unwrap();
        assert_eq!(text(&c, "#nav-login").await, "Log in");
    })
    .await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_other_sessions_logs_the_other_browser_out() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let phone = browser(&driver).await;
    let laptop = browser(&driver).await;
    with_screenshot("sessions", &laptop, async {
        log_in(&phone, &server, "carol").await;
        arrive(&phone, "/", &["Welcome, carol! You are logged in."]).await;
        log_in(&laptop, &server, "carol").await;
        arrive(&laptop, "/", &["Welcome, carol! You are logged in."]).await;
        laptop.goto(&server.url("/sessions")).await.unwrap();
        let rows = laptop
            .find_all(Locator::Css("#session-list tr.session"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(text(&laptop, "tr.current").await.contains("(this browser)"));
        click(&laptop, "#end-others").await;
        arrive(&laptop, "/sessions", &["Ended 1 other session(s)."]).await;
        let rows = laptop
            .find_all(Locator::Css("#session-list tr.session"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
    })
    .await;
    with_screenshot("sessions-other", &phone, async {
        phone.goto(&server.url("/sessions")).await.unwrap();
        assert!(text(&phone, "#sessions-login").await.contains("Log in"));
        assert_eq!(text(&phone, "#nav-login").await, "Log in");
    })
    .await;
    phone.close().await.unwrap();
    laptop.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_logout_the_old_cookie_no_longer_works() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let c = browser(&driver).await;
    with_screenshot("logout", &c, async {
        log_in(&c, &server, "dave").await;
        arrive(&c, "/", &["Welcome, dave! You are logged in."]).await;
        let old = c.get_named_cookie("id").await.unwrap().value().to_owned();
        click(&c, "#logout").await;
        arrive(&c, "/login", &["You are logged out."]).await;
        // The old cookie, replayed by another client, finds no session.
        let replay = reqwest::Client::new()
            .get(server.url("/sessions"))
            .header("cookie", format!("id={old}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(replay.contains("id=\"sessions-login\""), "{replay}");
    })
    .await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_cache_page_shows_the_cache_status() {
    let Some((driver, server)) = setup().await else {
        return;
    };
    let c = browser(&driver).await;
    with_screenshot("http-cache", &c, async {
        c.goto(&server.url("/http-cache")).await.unwrap();
        let status = |c: &Client| {
            let c = c.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let s = try_text(&c, "#cache-status").await.unwrap_or_default();
                    if s.starts_with("covet") {
                        return s;
                    }
                    assert!(Instant::now() < deadline, "no Cache-Status shown");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        click(&c, "#fetch-news").await;
        let first = status(&c).await;
        assert!(first.contains("fwd=uri-miss"), "{first}");
        // The response is stored once its body ended; the next fetches
        // are hits.
        let mut second = String::new();
        for _ in 0..40 {
            c.execute(
                "document.getElementById('cache-status').textContent = '';",
                vec![],
            )
            .await
            .unwrap();
            click(&c, "#fetch-news").await;
            second = status(&c).await;
            if second.starts_with("covet; hit") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(second.starts_with("covet; hit"), "{second}");
        assert_ne!(text(&c, "#age").await, "-");
    })
    .await;
    c.close().await.unwrap();
}
