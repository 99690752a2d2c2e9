//! [`Csrf`]: the middleware service and its checks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::Service;

use super::layer::CsrfConfig;
use super::token::verify;
use crate::security::security_event;
use crate::session::Session;

/// Which check refused a request; the response of a refused request
/// carries it as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrfRejection {
    /// `Sec-Fetch-Site: cross-site`: the browser says another site sent it.
    CrossSite,
    /// `Origin: null` (sandboxed frames, some redirects).
    NullOrigin,
    /// `Origin` names another origin than the request's own or a trusted
    /// one.
    OriginMismatch,
    /// An HTTPS request without `Origin` and without `Referer`.
    MissingReferer,
    /// An HTTPS request without `Origin` whose `Referer` is another origin.
    RefererMismatch,
    /// No token in the header nor in the form body.
    MissingToken,
    /// A token that is not a masked form of this session's secret.
    InvalidToken,
    /// The session has no CSRF secret yet (no page gave it a token).
    NoSecret,
    /// The form body is larger than the limit (`413`).
    BodyTooLarge,
    /// The form body could not be read or parsed.
    BadBody,
    /// No session on the request: `CsrfLayer` must be inside `SessionLayer`.
    NoSession,
    /// The session store failed while loading the session: a `500`, not a
    /// verdict on the request.
    StoreFailure,
}

impl CsrfRejection {
    /// A short reason, as in the response body and the event.
    pub fn reason(&self) -> &'static str {
        match self {
            CsrfRejection::CrossSite => "cross-site request",
            CsrfRejection::NullOrigin => "null origin",
            CsrfRejection::OriginMismatch => "origin not allowed",
            CsrfRejection::MissingReferer => "missing referer on an HTTPS request",
            CsrfRejection::RefererMismatch => "referer not allowed",
            CsrfRejection::MissingToken => "CSRF token missing",
            CsrfRejection::InvalidToken => "CSRF token invalid",
            CsrfRejection::NoSecret => "CSRF token invalid (no token was issued to this session)",
            CsrfRejection::BodyTooLarge => "request body too large",
            CsrfRejection::BadBody => "unreadable form body",
            CsrfRejection::NoSession => "no session",
            CsrfRejection::StoreFailure => "session store unavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            CsrfRejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            CsrfRejection::StoreFailure => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl fmt::Display for CsrfRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Middleware checking unsafe requests for a valid CSRF token and an
/// acceptable origin; built by [`CsrfLayer`](super::CsrfLayer).
#[derive(Clone)]
pub struct Csrf<S> {
    inner: S,
    config: Arc<CsrfConfig>,
}

impl<S> fmt::Debug for Csrf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Csrf<S> {
    /// Wraps `inner` with the default configuration.
    pub fn new(inner: S) -> Self {
        tower::Layer::layer(&super::CsrfLayer::new(), inner)
    }

    pub(crate) fn from_config(inner: S, config: Arc<CsrfConfig>) -> Self {
        Csrf { inner, config }
    }

    /// A [`CsrfLayer`](super::CsrfLayer) with the defaults.
    pub fn layer() -> super::CsrfLayer {
        super::CsrfLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`Csrf`].
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>,
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Csrf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<crate::BoxError>,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        if is_safe(req.method()) {
            let fut = inner.call(req);
            return ResponseFuture {
                inner: Box::pin(fut),
            };
        }
        ResponseFuture {
            inner: Box::pin(async move {
                match check(&config, req).await {
                    Ok(req) => inner.call(req).await,
                    Err((rejection, parts)) => Ok(reject(rejection, &parts)),
                }
            }),
        }
    }
}

/// Methods that must not change state: never checked.
fn is_safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

type Refused = (CsrfRejection, Parts);

/// Runs every check of an unsafe request; gives the request back (with its
/// body as it was) when it passes.
async fn check<B>(config: &CsrfConfig, req: Request<B>) -> Result<Request<B>, Refused>
where
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    let (parts, body) = req.into_parts();
    if config.exempt.as_ref().is_some_and(|f| f(&parts)) {
        return Ok(Request::from_parts(parts, body));
    }
    if let Err(r) = check_origin(config, &parts) {
        return Err((r, parts));
    }
    let Some(session) = parts.extensions.get::<Session>().cloned() else {
        return Err((CsrfRejection::NoSession, parts));
    };
    if let Err(e) = session.ensure_loaded().await {
        // Not a forgery: the store failed, as the session layer would say.
        e.log("loading the session for the CSRF check failed; answering 500");
        return Err((CsrfRejection::StoreFailure, parts));
    }
    let secret = match session.csrf_secret() {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => return Err((CsrfRejection::NoSecret, parts)),
    };
    if let Some(token) = parts.headers.get(&config.header) {
        return match token.to_str() {
            Ok(t) if verify(t, &secret) => Ok(Request::from_parts(parts, body)),
            _ => Err((CsrfRejection::InvalidToken, parts)),
        };
    }
    let form = form_kind(&parts.headers);
    let Some(form) = form else {
        return Err((CsrfRejection::MissingToken, parts));
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body as u64) {
        return Err((CsrfRejection::BodyTooLarge, parts));
    }
    let bytes = match Limited::new(body, config.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let r = if too_large {
                CsrfRejection::BodyTooLarge
            } else {
                CsrfRejection::BadBody
            };
            return Err((r, parts));
        }
    };
    let token = match form {
        Form::UrlEncoded => form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == config.field.as_str())
            .map(|(_, v)| v.into_owned()),
        Form::Multipart(boundary) => multipart_field(bytes.clone(), boundary, &config.field).await,
    };
    match token {
        Some(t) if verify(&t, &secret) => Ok(Request::from_parts(parts, B::from(bytes))),
        Some(_) => Err((CsrfRejection::InvalidToken, parts)),
        None => Err((CsrfRejection::MissingToken, parts)),
    }
}

enum Form {
    UrlEncoded,
    Multipart(String),
}

fn form_kind(headers: &HeaderMap) -> Option<Form> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Some(Form::UrlEncoded);
    }
    if essence.eq_ignore_ascii_case("multipart/form-data") {
        return multer::parse_boundary(ct).ok().map(Form::Multipart);
    }
    None
}

/// The text of the first multipart field named `name`.
async fn multipart_field(body: Bytes, boundary: String, name: &str) -> Option<String> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

/// Whether `origin` is exactly `scheme://host` of the request, the scheme
/// as [`own_origin`] finds it (a quick check; `false` means "look closer").
fn is_own_origin(origin: &str, parts: &Parts) -> bool {
    let scheme = match parts.uri.scheme_str() {
        Some(s) => s,
        None => match parts.headers.get("x-forwarded-proto") {
            Some(v) => match v.as_bytes() {
                b"https" => "https",
                b"http" => "http",
                _ => return false,
            },
            None if parts.headers.contains_key("forwarded") => return false,
            None => "http",
        },
    };
    let host = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => match parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            Some(h) => h,
            None => return false,
        },
    };
    origin
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
        .is_some_and(|rest| rest == host)
        && !host.ends_with(":80")
        && !host.ends_with(":443")
}

/// The request's own origin: `scheme://host[:port]`. The scheme comes from
/// the request target, else `X-Forwarded-Proto` / `Forwarded: proto=`
/// (which a cross-site form cannot set), else `http`.
fn own_origin(parts: &Parts) -> Option<String> {
    let scheme = parts
        .uri
        .scheme_str()
        .map(str::to_ascii_lowercase)
        .or_else(|| forwarded_proto(&parts.headers))
        .unwrap_or_else(|| "http".to_owned());
    let host = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts.headers.get(header::HOST)?.to_str().ok()?,
    };
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':'))
        && !host.ends_with(":80")
        && !host.ends_with(":443");
    if plain && !host.is_empty() {
        // Already normal: lowercase, no default port.
        return Some(format!("{scheme}://{host}"));
    }
    normalize_origin(&format!("{scheme}://{host}"))
}

fn forwarded_proto(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        let first = v.split(',').next()?.trim().to_ascii_lowercase();
        return matches!(first.as_str(), "http" | "https").then_some(first);
    }
    let v = headers.get("forwarded")?.to_str().ok()?;
    v.split(',').next()?.split(';').find_map(|pair| {
        let (k, val) = pair.split_once('=')?;
        let val = val.trim().trim_matches('"').to_ascii_lowercase();
        (k.trim().eq_ignore_ascii_case("proto") && matches!(val.as_str(), "http" | "https"))
            .then_some(val)
    })
}

/// `scheme://host[:port]` lowercased without the default port, or `None`
/// if `origin` is not an http(s) origin (a path, user info, a bad port).
pub(crate) fn normalize_origin(origin: &str) -> Option<String> {
    let uri: Uri = origin.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    if uri
        .path_and_query()
        .is_some_and(|p| !p.as_str().is_empty() && p.as_str() != "/")
    {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match authority.port_u16() {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The origin of a `Referer` URL.
fn referer_origin(referer: &str) -> Option<String> {
    let uri: Uri = referer.trim().parse().ok()?;
    let scheme = uri.scheme_str()?;
    normalize_origin(&format!("{scheme}://{}", uri.authority()?.as_str()))
}

/// `Sec-Fetch-Site`, `Origin`, and on HTTPS without `Origin` the `Referer`.
fn check_origin(config: &CsrfConfig, parts: &Parts) -> Result<(), CsrfRejection> {
    let headers = &parts.headers;
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(CsrfRejection::CrossSite);
    }
    // Browsers send the origin in its normal form: the common case (a
    // same-origin request) is settled without parsing or allocating.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && is_own_origin(origin, parts)
    {
        return Ok(());
    }
    let own = own_origin(parts);
    let allowed = |origin: &str| {
        own.as_deref() == Some(origin) || config.trusted_origins.iter().any(|t| t == origin)
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim();
        if origin.eq_ignore_ascii_case("null") {
            return Err(CsrfRejection::NullOrigin);
        }
        if own.as_deref() == Some(origin) {
            return Ok(());
        }
        return match normalize_origin(origin) {
            Some(o) if allowed(&o) => Ok(()),
            _ => Err(CsrfRejection::OriginMismatch),
        };
    }
    let https = own.as_deref().is_some_and(|o| o.starts_with("https://"));
    if https {
        let Some(referer) = headers.get(header::REFERER) else {
            return Err(CsrfRejection::MissingReferer);
        };
        return match referer.to_str().ok().and_then(referer_origin) {
            Some(o) if allowed(&o) => Ok(()),
            _ => Err(CsrfRejection::RefererMismatch),
        };
    }
    Ok(())
}

/// The `403` (or `413`) of a refused request, with the reason as text, the
/// [`CsrfRejection`] as an extension, and an event.
fn reject<B: From<String>>(rejection: CsrfRejection, parts: &Parts) -> Response<B> {
    if rejection == CsrfRejection::StoreFailure {
        let mut response = Response::new(B::from(String::new()));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return response;
    }
    if let Some(session) = parts.extensions.get::<crate::Session>() {
        session.record(crate::stats::Event::CsrfRejected);
    }
    security_event!(
        warn,
        "csrf_rejected",
        reason = rejection.reason(),
        method = %parts.method,
        path = parts.uri.path(),
        "an unsafe request failed the CSRF checks"
    );
    let status = rejection.status();
    let mut response = Response::new(B::from(format!(
        "{}: {}",
        status.canonical_reason().unwrap_or("Forbidden"),
        rejection.reason()
    )));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(rejection);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_exact() {
        assert_eq!(
            normalize_origin("https://Example.com:443").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            normalize_origin("http://example.com:8080").as_deref(),
            Some("http://example.com:8080")
        );
        assert_eq!(
            normalize_origin("https://example.com/").as_deref(),
            Some("https://example.com")
        );
        for bad in [
            "example.com",
            "https://example.com/path",
            "ftp://example.com",
            "https://u@example.com",
            "null",
            "",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
        assert_ne!(
            normalize_origin("https://example.com.evil.net"),
            normalize_origin("https://example.com")
        );
        assert_eq!(
            referer_origin("https://example.com/a/b?c").as_deref(),
            Some("https://example.com")
        );
    }
}
