//! `CookieStore` through the public API: the `Session` handle, the
//! `SessionLayer`, key rotation across restarts, and the size limit.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covet::session::store::cookie::{Key, derive_key};
use covet::session::store::{Data, Record};
use covet::session::{
    CookieStore, Error, SaveOutcome, Session, SessionConfig, SessionLayer, SessionStore,
};
use http::{Request, Response, StatusCode, header};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-current";
const OLD_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-previous";

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

fn store(secret: &[u8]) -> CookieStore {
    CookieStore::builder(derive_key(secret).unwrap())
        .build()
        .unwrap()
}

fn layer(store: CookieStore) -> SessionLayer {
    SessionLayer::new(store).with_config(SessionConfig::default().with_cookie_name("sid"))
}

/// The handler: the path says what to do with the session.
async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
    let session = req.extensions().get::<Session>().unwrap().clone();
    session.ensure_loaded().await.unwrap();
    let body = match req.uri().path() {
        "/login" => {
            session.insert("user", "ada").unwrap();
            String::new()
        }
        "/whoami" => format!("{:?}", session.get::<String>("user").unwrap()),
        "/count" => {
            let n: u64 = session.get("n").unwrap().unwrap_or(0);
            session.insert("n", n + 1).unwrap();
            n.to_string()
        }
        "/big" => {
            session.insert("blob", "x".repeat(5000)).unwrap();
            String::new()
        }
        "/logout" => {
            session.clear();
            String::new()
        }
        other => unreachable!("{other}"),
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

/// The one `Set-Cookie` of `r`, if any.
fn set_cookie(r: &Response<String>) -> Option<String> {
    let mut all = r.headers().get_all(header::SET_COOKIE).iter();
    let first = all.next().map(|v| v.to_str().unwrap().to_owned());
    assert!(all.next().is_none(), "at most one Set-Cookie");
    first
}

/// `name=value` of a `Set-Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_request_carrying_its_session_gets_its_data() {
    let s = store(SECRET);
    let mut data = Data::new();
    data.insert("user".into(), json!("grace"));
    let id = s.create(&Record::new(data, in_secs(60))).await.unwrap();
    let layer = layer(s);

    let cookie = format!("sid={}", id.expose());
    let r = call(&layer, "/whoami", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.body(), "Some(\"grace\")");

    // A fresh process with the same secret reads it too.
    let r = call(&self::layer(store(SECRET)), "/whoami", Some(&cookie)).await;
    assert_eq!(r.body(), "Some(\"grace\")");
    // Another secret, or a changed value, is a fresh session.
    let other = self::layer(store(OLD_SECRET));
    assert_eq!(call(&other, "/whoami", Some(&cookie)).await.body(), "None");
    let tampered = format!("sid=A{}", &id.expose()[1..]);
    let tampered = if tampered == cookie {
        format!("sid=B{}", &id.expose()[1..])
    } else {
        tampered
    };
    assert_eq!(
        call(&layer, "/whoami", Some(&tampered)).await.body(),
        "None"
    );
}

#[tokio::test]
async fn the_layer_sends_each_new_value_and_a_removal_cookie() {
    let layer = layer(store(SECRET));
    let r = call(&layer, "/login", None).await;
    let c = set_cookie(&r).expect("a cookie for the new session");
    assert!(c.starts_with("sid=") && c.contains("HttpOnly"), "{c}");
    assert!(c.len() < 4096, "{}", c.len());
    let first = pair(&c);
    assert_eq!(
        call(&layer, "/whoami", Some(&first)).await.body(),
        "Some(\"ada\")"
    );

    let r = call(&layer, "/logout", Some(&first)).await;
    let removal = set_cookie(&r).expect("a removal cookie");
    assert!(removal.starts_with("sid=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    // The value cannot be revoked: a copy kept by the client still opens
    // until its sealed expiry.
    assert_eq!(
        call(&layer, "/whoami", Some(&first)).await.body(),
        "Some(\"ada\")"
    );
}

#[tokio::test]
async fn an_oversize_session_is_a_500_without_a_cookie() {
    let layer = layer(store(SECRET));
    let r = call(&layer, "/big", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(set_cookie(&r), None);

    // Also when growing an existing session.
    let c = pair(&set_cookie(&call(&layer, "/login", None).await).unwrap());
    let r = call(&layer, "/big", Some(&c)).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(set_cookie(&r), None);
    assert_eq!(
        call(&layer, "/whoami", Some(&c)).await.body(),
        "Some(\"ada\")"
    );
}

#[tokio::test]
async fn session_save_reports_the_oversize_error_typed() {
    let store: Arc<dyn SessionStore> = Arc::new(CookieStore::new(Key::generate()));
    let session = Session::new(store.clone(), &covet::session::SessionConfig::default());
    session.insert("blob", "x".repeat(5000)).unwrap();
    let err = session.save().await.unwrap_err();
    assert!(
        matches!(err, Error::CookieTooLarge { size, limit: 4096 } if size > 4096),
        "{err:?}"
    );
    assert_eq!(session.id(), None);

    // A stored session that grows too large keeps its last good value.
    let session = Session::new(store.clone(), &covet::session::SessionConfig::default());
    session.insert("n", 1).unwrap();
    assert!(matches!(
        session.save().await.unwrap(),
        SaveOutcome::Created { .. }
    ));
    let id = session.id().unwrap();
    session.insert("blob", "x".repeat(5000)).unwrap();
    assert!(matches!(
        session.save().await,
        Err(Error::CookieTooLarge { .. })
    ));
    assert_eq!(session.id(), Some(id.clone()));
    let again = Session::load(store, &id, &covet::session::SessionConfig::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.get::<i32>("n").unwrap(), Some(1));
    assert!(!again.contains("blob"));
}

#[tokio::test]
async fn rotating_keys_keeps_sessions_and_moves_them_to_the_new_key() {
    let before = layer(store(OLD_SECRET));
    let old_cookie = pair(&set_cookie(&call(&before, "/login", None).await).unwrap());

    let rotated = layer(
        CookieStore::builder(derive_key(SECRET).unwrap())
            .old_key(derive_key(OLD_SECRET).unwrap())
            .build()
            .unwrap(),
    );
    let new_only = layer(store(SECRET));
    assert_eq!(
        call(&rotated, "/whoami", Some(&old_cookie)).await.body(),
        "Some(\"ada\")"
    );
    assert_eq!(
        call(&new_only, "/whoami", Some(&old_cookie)).await.body(),
        "None"
    );

    // The next change is sealed with the new key only.
    let r = call(&rotated, "/count", Some(&old_cookie)).await;
    let new_cookie = pair(&set_cookie(&r).expect("a new value"));
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(
        call(&new_only, "/whoami", Some(&new_cookie)).await.body(),
        "Some(\"ada\")"
    );
    assert_eq!(
        call(&before, "/whoami", Some(&new_cookie)).await.body(),
        "None"
    );
}
