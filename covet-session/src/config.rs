//! [`SessionConfig`]: the cookie and the idle timeout.

use std::sync::OnceLock;
use std::time::Duration;

pub use cookie::SameSite;

use crate::session::DEFAULT_IDLE_TIMEOUT;

/// Default cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "id";

/// How `SessionLayer` writes its cookie and how long sessions live.
///
/// Defaults: cookie `id`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`, no
/// `Domain`, idle timeout two weeks (the cookie's `Max-Age` and the store
/// expiry both follow it).
///
/// ```
/// use std::time::Duration;
/// use covet_session::{SameSite, SessionConfig};
/// let config = SessionConfig::default()
///     .with_cookie_name("sid")
///     .with_same_site(SameSite::Strict)
///     .with_idle_timeout(Duration::from_secs(3600));
/// assert_eq!(config.cookie_name(), "sid");
/// assert!(config.secure());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionConfig {
    cookie_name: String,
    http_only: bool,
    secure: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    idle_timeout: Duration,
    /// `; HttpOnly; ...; Max-Age=N`: the attributes, rendered once.
    attributes: OnceLock<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            http_only: true,
            secure: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            attributes: OnceLock::new(),
        }
    }
}

impl SessionConfig {
    /// The cookie name (default `id`).
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.attributes = OnceLock::new();
        self.cookie_name = name.into();
        self
    }

    /// Whether the cookie is `HttpOnly` (default `true`).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.attributes = OnceLock::new();
        self.http_only = http_only;
        self
    }

    /// Whether the cookie is `Secure` (default `true`; turn it off only for
    /// plain-HTTP development).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.attributes = OnceLock::new();
        self.secure = secure;
        self
    }

    /// The `SameSite` attribute (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.attributes = OnceLock::new();
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute (default `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.attributes = OnceLock::new();
        self.path = path.into();
        self
    }

    /// The `Domain` attribute (default none: the cookie stays on this host).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.attributes = OnceLock::new();
        self.domain = Some(domain.into());
        self
    }

    /// How long an unused session lives (default two weeks).
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.attributes = OnceLock::new();
        self.idle_timeout = idle_timeout;
        self
    }

    /// The cookie name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Whether the cookie is `HttpOnly`.
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// Whether the cookie is `Secure`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// The `Path` attribute.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Domain` attribute.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The cookie carrying `value`, with every attribute set.
    pub(crate) fn cookie(&self, value: String) -> cookie::Cookie<'static> {
        let max_age = cookie::time::Duration::try_from(self.idle_timeout)
            .unwrap_or(cookie::time::Duration::MAX);
        let mut c = cookie::Cookie::build((self.cookie_name.clone(), value))
            .http_only(self.http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(max_age)
            .build();
        if let Some(d) = &self.domain {
            c.set_domain(d.clone());
        }
        c
    }

    /// The `Set-Cookie` value carrying `value`: the attributes are rendered
    /// by the cookie crate once per configuration, then reused.
    pub(crate) fn set_cookie_value(&self, value: &str) -> String {
        let attributes = self.attributes.get_or_init(|| {
            let rendered = self.cookie(String::new()).to_string();
            rendered
                .get(self.cookie_name.len() + 1..)
                .unwrap_or_default()
                .to_owned()
        });
        let mut out =
            String::with_capacity(self.cookie_name.len() + 1 + value.len() + attributes.len());
        out.push_str(&self.cookie_name);
        out.push('=');
        out.push_str(value);
        out.push_str(attributes);
        out
    }

    /// A cookie that removes ours: same attributes, empty, expired.
    pub(crate) fn removal_cookie(&self) -> cookie::Cookie<'static> {
        let mut c = self.cookie(String::new());
        c.make_removal();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prerendered_cookies_match_the_cookie_crate() {
        let configs = [
            SessionConfig::default(),
            SessionConfig::default()
                .with_cookie_name("sid")
                .with_secure(false)
                .with_http_only(false)
                .with_same_site(SameSite::Strict)
                .with_path("/app")
                .with_domain("example.com")
                .with_idle_timeout(Duration::from_secs(90)),
            SessionConfig::default().with_same_site(SameSite::None),
        ];
        for config in configs {
            for value in ["abc", "Zm9v_-09"] {
                assert_eq!(
                    config.set_cookie_value(value),
                    config.cookie(value.to_owned()).to_string()
                );
            }
            // A setter after first use renders the attributes again.
            let changed = config.clone().with_path("/other");
            assert!(changed.set_cookie_value("v").contains("Path=/other"));
        }
    }
}
