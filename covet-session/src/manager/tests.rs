use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode, header};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::store::{Changes, Record};
use crate::{
    Error, MemoryStore, Result, SameSite, Session, SessionConfig, SessionId, SessionLayer,
    SessionStore,
};

/// A MemoryStore that counts calls, or fails them all.
#[derive(Debug, Default)]
struct Probe {
    inner: MemoryStore,
    calls: AtomicUsize,
    fail: bool,
    /// Loads return records past their deadline (a store with lazy
    /// expiry).
    lag: bool,
}

impl Probe {
    fn check(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(Error::store(
                "probe",
                "down",
                std::io::Error::other("connection refused"),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionStore for Probe {
    async fn create(&self, r: &Record) -> Result<SessionId> {
        self.check()?;
        self.inner.create(r).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.check()?;
        let mut record = self.inner.load(id).await?;
        if self.lag
            && let Some(r) = &mut record
        {
            r.expires_at = SystemTime::now() - Duration::from_secs(1);
        }
        Ok(record)
    }
    async fn save(&self, id: &SessionId, c: &Changes) -> Result<Option<SessionId>> {
        self.check()?;
        self.inner.save(id, c).await
    }
    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.check()?;
        self.inner.delete(id).await
    }
    async fn delete_expired(&self) -> Result<u64> {
        self.check()?;
        self.inner.delete_expired().await
    }
    async fn touch(&self, id: &SessionId, e: SystemTime) -> Result<Option<SessionId>> {
        self.check()?;
        self.inner.touch(id, e).await
    }
}

/// The handler: the path says what to do with the session.
async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
    let session = req.extensions().get::<Session>().unwrap().clone();
    let path = req.uri().path().to_owned();
    if path == "/none" {
        return Ok(Response::new(String::new()));
    }
    if path == "/try" {
        let mut r = Response::new(String::new());
        if session.ensure_loaded().await.is_err() {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        return Ok(r);
    }
    session.ensure_loaded().await.unwrap();
    let body = match path.as_str() {
        "/count" => {
            let n: u64 = session.get("n").unwrap().unwrap_or(0);
            session.insert("n", n + 1).unwrap();
            n.to_string()
        }
        "/same" => {
            session.insert("fixed", "v").unwrap();
            String::new()
        }
        "/read" => format!("{:?}", session.get::<u64>("n").unwrap()),
        "/clear" => {
            session.clear();
            String::new()
        }
        "/boom" => {
            session.insert("n", 999).unwrap();
            let mut r = Response::new(String::new());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(r);
        }
        _ => unreachable!(),
    };
    Ok(Response::new(body))
}

async fn call(layer: &SessionLayer, path: &str, cookie: Option<&str>) -> Response<String> {
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(handler));
    let mut req = Request::builder().uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    svc.oneshot(req.body(String::new()).unwrap()).await.unwrap()
}

fn set_cookie(r: &Response<String>) -> Option<String> {
    let mut all = r.headers().get_all(header::SET_COOKIE).iter();
    let first = all.next().map(|v| v.to_str().unwrap().to_owned());
    assert!(all.next().is_none(), "at most one Set-Cookie");
    first
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn probe(fail: bool) -> (Arc<Probe>, SessionLayer) {
    let p = Arc::new(Probe {
        fail,
        ..Probe::default()
    });
    (p.clone(), SessionLayer::from_shared(p))
}

#[tokio::test]
async fn unused_sessions_never_reach_the_store() {
    let (p, layer) = probe(false);
    let r = call(&layer, "/none", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(set_cookie(&r), None);
    let r = call(&layer, "/none", Some("id=whatever")).await;
    assert_eq!(set_cookie(&r), None);
    assert_eq!(p.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn new_session_sets_a_cookie_with_the_default_attributes() {
    let (p, layer) = probe(false);
    let r = call(&layer, "/count", None).await;
    assert_eq!(r.body(), "0");
    let c = set_cookie(&r).expect("cookie for a new session");
    assert!(c.starts_with("id="), "{c}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=1209600",
    ] {
        assert!(c.contains(attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain"), "{c}");
    let id: SessionId = pair(&c)[3..].parse().unwrap();
    // The store holds the session under the hash, and has it.
    assert!(p.inner.load(&id).await.unwrap().is_some());

    let r = call(&layer, "/count", Some(&pair(&c))).await;
    assert_eq!(r.body(), "1");
    let r = call(&layer, "/read", Some(&format!("other=1; {}", pair(&c)))).await;
    assert_eq!(r.body(), "Some(2)");
    assert_eq!(set_cookie(&r), None, "unchanged, fresh session: no cookie");
}

#[tokio::test]
async fn equal_inserts_save_nothing() {
    let (p, layer) = probe(false);
    let c = pair(&set_cookie(&call(&layer, "/same", None).await).unwrap());
    let before = p.calls.load(Ordering::SeqCst);
    let r = call(&layer, "/same", Some(&c)).await;
    assert_eq!(set_cookie(&r), None);
    assert_eq!(
        p.calls.load(Ordering::SeqCst),
        before + 1,
        "one load, no save"
    );
}

#[tokio::test]
async fn server_errors_are_not_saved() {
    let (_, layer) = probe(false);
    let c = pair(&set_cookie(&call(&layer, "/count", None).await).unwrap());
    let r = call(&layer, "/boom", Some(&c)).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(set_cookie(&r), None);
    assert_eq!(call(&layer, "/read", Some(&c)).await.body(), "Some(1)");
    assert_eq!(
        call(&layer, "/boom", None)
            .await
            .headers()
            .get(header::SET_COOKIE),
        None
    );
}

#[tokio::test]
async fn clearing_deletes_and_sends_a_removal_cookie() {
    let config = SessionConfig::default()
        .with_cookie_name("sid")
        .with_domain("example.com")
        .with_path("/app")
        .with_same_site(SameSite::Strict)
        .with_secure(false)
        .with_http_only(false);
    let (p, layer) = probe(false);
    let layer = layer.with_config(config);
    let c = set_cookie(&call(&layer, "/count", None).await).unwrap();
    for attr in ["sid=", "Domain=example.com", "Path=/app", "SameSite=Strict"] {
        assert!(c.contains(attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Secure") && !c.contains("HttpOnly"), "{c}");
    let id: SessionId = pair(&c)[4..].parse().unwrap();

    let r = call(&layer, "/clear", Some(&pair(&c))).await;
    let removal = set_cookie(&r).expect("removal cookie");
    assert!(removal.starts_with("sid=;"), "{removal}");
    for attr in [
        "Max-Age=0",
        "Domain=example.com",
        "Path=/app",
        "SameSite=Strict",
    ] {
        assert!(removal.contains(attr), "{attr} missing in {removal}");
    }
    assert_eq!(p.inner.load(&id).await.unwrap(), None);
    assert_eq!(call(&layer, "/read", Some(&pair(&c))).await.body(), "None");
}

#[tokio::test]
async fn store_failures_are_an_opaque_500() {
    let (_, layer) = probe(true);
    let r = call(&layer, "/none", None).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "unused: the store is never asked"
    );
    let r = call(&layer, "/same", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body(), "");
    assert_eq!(set_cookie(&r), None);
}

#[tokio::test]
async fn malformed_and_unknown_cookies_start_fresh_sessions() {
    let (_, layer) = probe(false);
    let unknown = SessionId::generate().unwrap();
    for cookie in [
        "id=short",
        "id=",
        "garbage",
        &format!("id={}", unknown.expose()),
    ] {
        let r = call(&layer, "/count", Some(cookie)).await;
        assert_eq!(r.body(), "0", "{cookie}");
        let c = set_cookie(&r).unwrap();
        assert_ne!(
            pair(&c),
            format!("id={}", unknown.expose()),
            "unknown ids are not adopted"
        );
    }
}

#[tokio::test]
async fn expiry_is_renewed_once_per_renewal_interval() {
    let (p, layer) = probe(false);
    let layer = layer.with_config(
        SessionConfig::default()
            .with_idle_timeout(Duration::from_millis(1600))
            .with_renewal_interval(Duration::from_millis(200)),
    );
    let c = pair(&set_cookie(&call(&layer, "/count", None).await).unwrap());
    let id: SessionId = c[3..].parse().unwrap();
    let first = p.inner.load(&id).await.unwrap().unwrap().expires_at;
    assert_eq!(set_cookie(&call(&layer, "/read", Some(&c)).await), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = set_cookie(&call(&layer, "/read", Some(&c)).await).expect("refresh cookie");
    assert_eq!(pair(&refreshed), c);
    assert!(refreshed.contains("Max-Age=1"), "{refreshed}");
    assert!(p.inner.load(&id).await.unwrap().unwrap().expires_at > first);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        call(&layer, "/read", Some(&c)).await.body(),
        "None",
        "idle too long"
    );
}

#[tokio::test]
async fn a_record_past_its_idle_deadline_is_refused_and_counted() {
    let p = Arc::new(Probe::default());
    let layer = SessionLayer::from_shared(p.clone());
    let r = call(&layer, "/count", None).await;
    let cookie = pair(&set_cookie(&r).unwrap());
    assert_eq!(call(&layer, "/read", Some(&cookie)).await.body(), "Some(1)");
    // The same store, now returning records past their deadline.
    let lagging = Arc::new(Probe {
        inner: p.inner.clone(),
        lag: true,
        ..Probe::default()
    });
    let layer = SessionLayer::from_shared(lagging.clone());
    assert_eq!(call(&layer, "/read", Some(&cookie)).await.body(), "None");
    let stats = layer.stats();
    assert_eq!((stats.expired_idle, stats.loaded), (1, 0), "{stats:?}");
    let id: SessionId = cookie[3..].parse().unwrap();
    assert!(p.inner.load(&id).await.unwrap().is_none(), "deleted");
}

#[tokio::test]
async fn store_errors_are_counted() {
    let (_, layer) = probe(true);
    let r = call(
        &layer,
        "/try",
        Some(&format!("id={}", SessionId::generate().unwrap().expose())),
    )
    .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(layer.stats().store_errors, 1);
}
