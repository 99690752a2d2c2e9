//! [`SessionConfig`]: the cookie, the timeouts and the size limit.

use std::sync::OnceLock;
use std::time::Duration;

pub use cookie::SameSite;

use crate::error::ConfigError;
use crate::security::{Binding, IpRange};

/// Default cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "id";
/// Default idle timeout: two weeks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Default absolute timeout: 30 days after the session was created (or its
/// user logged in), however active it is.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default renewal interval: an unchanged session's expiry is written at
/// most once per five minutes.
pub const DEFAULT_RENEWAL_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default limit of a session's stored form: 64 KiB.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;
/// The longest timeout a configuration accepts: 400 days, the longest
/// lifetime browsers give a cookie.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// How `SessionLayer` writes its cookie and how long sessions live.
///
/// Defaults: cookie `id`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`, no
/// `Domain`; idle timeout two weeks (the cookie's `Max-Age` and the store
/// expiry both follow it), absolute timeout 30 days, renewal at most every
/// five minutes, sessions up to 64 KiB. The server enforces every timeout:
/// the cookie's `Max-Age` is a courtesy to the browser, never trusted.
/// [`validate`](SessionConfig::validate) checks the cookie rules browsers
/// apply; `SessionLayer` refuses an invalid configuration.
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
    absolute_timeout: Duration,
    renewal_interval: Duration,
    browser_session: bool,
    max_size: usize,
    clear_site_data: bool,
    binding: Binding,
    binding_prefixes: (u8, u8),
    trusted_proxies: Vec<IpRange>,
    /// Entries of `with_trusted_proxies` that did not parse (reported by
    /// `validate`).
    invalid_proxies: Vec<String>,
    event_salt: Option<Vec<u8>>,
    /// `; HttpOnly; ...; Max-Age=N`: the attributes, rendered once.
    attributes: OnceLock<String>,
    /// The statistics of the layer this configuration is in (shared by
    /// its clones).
    pub(crate) counters: std::sync::Arc<crate::stats::Counters>,
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
            absolute_timeout: DEFAULT_ABSOLUTE_TIMEOUT,
            renewal_interval: DEFAULT_RENEWAL_INTERVAL,
            browser_session: false,
            max_size: DEFAULT_MAX_SIZE,
            clear_site_data: false,
            binding: Binding::default(),
            binding_prefixes: (24, 64),
            trusted_proxies: Vec::new(),
            invalid_proxies: Vec::new(),
            event_salt: None,
            attributes: OnceLock::new(),
            counters: std::sync::Arc::default(),
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

    /// How long an unused session lives (default two weeks): the server
    /// refuses a session idle for longer, whatever the cookie says.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.attributes = OnceLock::new();
        self.idle_timeout = idle_timeout;
        self
    }

    /// How long a session lives after it was created or its user logged in,
    /// however active it is (default 30 days). Shorter than the idle
    /// timeout is valid: it then caps it.
    pub fn with_absolute_timeout(mut self, absolute_timeout: Duration) -> Self {
        self.attributes = OnceLock::new();
        self.absolute_timeout = absolute_timeout;
        self
    }

    /// How often a session's expiry moves forward (default five minutes;
    /// never less often than half the idle timeout): an unchanged session's
    /// expiry is written back once per interval, and the cookie, whose id
    /// does not change, is sent again (moving its `Max-Age`) at most once
    /// per interval, not on every change. A client-side store's cookie
    /// changes with every change and is always sent.
    pub fn with_renewal_interval(mut self, interval: Duration) -> Self {
        self.renewal_interval = interval;
        self
    }

    /// A cookie without `Max-Age` that the browser drops when it closes
    /// (default `false`). The server still applies both timeouts.
    pub fn with_browser_session(mut self, browser_session: bool) -> Self {
        self.attributes = OnceLock::new();
        self.browser_session = browser_session;
        self
    }

    /// The largest stored form of a session's data, in bytes (default 64
    /// KiB): an insert past it is [`Error::TooLarge`](crate::Error::TooLarge)
    /// and changes nothing.
    pub fn with_max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Adds `Clear-Site-Data: "cache", "cookies", "storage"` to the
    /// response of a [`logout`](crate::Session::logout) (default `false`).
    pub fn with_clear_site_data(mut self, clear: bool) -> Self {
        self.clear_site_data = clear;
        self
    }

    /// How sessions are bound to their client (hijack detection): default
    /// [`Binding::Log`]. See [`Binding`].
    pub fn with_binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    /// How much of the client's address the binding keeps: the first `v4`
    /// bits of an IPv4 address (default 24) and `v6` of an IPv6 one
    /// (default 64).
    pub fn with_binding_prefixes(mut self, v4: u8, v6: u8) -> Self {
        self.binding_prefixes = (v4.min(32), v6.min(128));
        self
    }

    /// Proxies in front of the app (addresses or CIDR ranges such as
    /// `10.0.0.0/8`): when the socket peer is one of them, the client's
    /// address is the rightmost `X-Forwarded-For` / `Forwarded` entry that
    /// is not one of them (never the leftmost, which the client controls).
    /// Entries that do not parse make [`validate`](Self::validate) fail.
    pub fn with_trusted_proxies<I>(mut self, proxies: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for p in proxies {
            match p.as_ref().parse::<IpRange>() {
                Ok(r) => self.trusted_proxies.push(r),
                Err(_) => self.invalid_proxies.push(p.as_ref().to_owned()),
            }
        }
        self
    }

    /// The salt of the session hashes in security events (default: random
    /// per process). Set one shared by every process to correlate events
    /// across them.
    pub fn with_event_salt(mut self, salt: impl Into<Vec<u8>>) -> Self {
        self.event_salt = Some(salt.into());
        self
    }

    /// The binding policy.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    /// The IPv4 and IPv6 prefix lengths the binding keeps.
    pub fn binding_prefixes(&self) -> (u8, u8) {
        self.binding_prefixes
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &[IpRange] {
        &self.trusted_proxies
    }

    pub(crate) fn event_salt(&self) -> Option<&[u8]> {
        self.event_salt.as_deref()
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

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// The renewal interval in effect: the configured one, at most half the
    /// idle timeout.
    pub fn renewal_interval(&self) -> Duration {
        self.renewal_interval.min(self.idle_timeout / 2)
    }

    /// Whether the cookie is a browser-session cookie (no `Max-Age`).
    pub fn browser_session(&self) -> bool {
        self.browser_session
    }

    /// The size limit of a session's stored form, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Whether a logout response carries `Clear-Site-Data`.
    pub fn clear_site_data(&self) -> bool {
        self.clear_site_data
    }

    /// Checks the rules browsers apply to cookies, and the ranges of the
    /// timeouts:
    /// - the name is an RFC 6265 token (no separators, spaces or controls);
    /// - a `__Host-` name is `Secure`, `Path=/` and has no `Domain`;
    /// - a `__Secure-` name is `Secure`;
    /// - `SameSite=None` is `Secure`;
    /// - the path starts with `/` and the path and domain hold no `;`,
    ///   spaces or controls;
    /// - the idle and absolute timeouts are between one second and
    ///   [`MAX_TIMEOUT`]; the size limit is not zero.
    ///
    /// ```
    /// use covet_session::{SameSite, SessionConfig, ConfigError};
    /// assert!(SessionConfig::default().validate().is_ok());
    /// let bad = SessionConfig::default().with_cookie_name("__Host-id").with_domain("example.com");
    /// assert!(matches!(bad.validate(), Err(ConfigError::HostPrefix { .. })));
    /// let bad = SessionConfig::default().with_secure(false).with_same_site(SameSite::None);
    /// assert!(matches!(bad.validate(), Err(ConfigError::SameSiteNoneWithoutSecure)));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.cookie_name;
        if !is_token(name) {
            return Err(ConfigError::InvalidCookieName(name.clone()));
        }
        if starts_with_ignore_case(name, "__Host-") {
            let reason = if !self.secure {
                Some("it must be Secure")
            } else if self.path != "/" {
                Some("its Path must be /")
            } else if self.domain.is_some() {
                Some("it must have no Domain")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::HostPrefix { reason });
            }
        }
        if starts_with_ignore_case(name, "__Secure-") && !self.secure {
            return Err(ConfigError::SecurePrefix);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if !self.path.starts_with('/') || !is_attribute_value(&self.path) {
            return Err(ConfigError::InvalidAttribute {
                attribute: "Path",
                value: self.path.clone(),
            });
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || !is_attribute_value(d))
        {
            return Err(ConfigError::InvalidAttribute {
                attribute: "Domain",
                value: d.clone(),
            });
        }
        for (setting, value) in [
            ("idle_timeout", self.idle_timeout),
            ("absolute_timeout", self.absolute_timeout),
        ] {
            if value < Duration::from_secs(1) || value > MAX_TIMEOUT {
                return Err(ConfigError::TimeoutOutOfRange { setting, value });
            }
        }
        if self.max_size == 0 {
            return Err(ConfigError::ZeroMaxSize);
        }
        if let Some(bad) = self.invalid_proxies.first() {
            return Err(ConfigError::InvalidAttribute {
                attribute: "trusted proxy",
                value: bad.clone(),
            });
        }
        Ok(())
    }

    /// The cookie carrying `value`, with every attribute set.
    pub(crate) fn cookie(&self, value: String) -> cookie::Cookie<'static> {
        let lifetime = self
            .idle_timeout
            .min(self.absolute_timeout)
            .min(MAX_TIMEOUT);
        let max_age =
            cookie::time::Duration::try_from(lifetime).unwrap_or(cookie::time::Duration::MAX);
        let mut builder = cookie::Cookie::build((self.cookie_name.clone(), value))
            .http_only(self.http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone());
        if !self.browser_session {
            builder = builder.max_age(max_age);
        }
        let mut c = builder.build();
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

/// An RFC 6265 cookie-name token.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn is_attribute_value(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_rules() {
        let ok = [
            SessionConfig::default(),
            SessionConfig::default().with_cookie_name("__Host-id"),
            SessionConfig::default()
                .with_cookie_name("__Secure-id")
                .with_domain("example.com"),
            SessionConfig::default().with_same_site(SameSite::None),
            SessionConfig::default().with_absolute_timeout(Duration::from_secs(60)),
        ];
        for c in ok {
            assert!(c.validate().is_ok(), "{c:?}");
        }
        let bad: [(SessionConfig, &str); 12] = [
            (SessionConfig::default().with_cookie_name("a b"), "name"),
            (SessionConfig::default().with_cookie_name(""), "name"),
            (SessionConfig::default().with_cookie_name("a;b"), "name"),
            (
                SessionConfig::default()
                    .with_cookie_name("__Host-id")
                    .with_secure(false),
                "host",
            ),
            (
                SessionConfig::default()
                    .with_cookie_name("__host-id")
                    .with_path("/app"),
                "host",
            ),
            (
                SessionConfig::default()
                    .with_cookie_name("__Host-id")
                    .with_domain("a.test"),
                "host",
            ),
            (
                SessionConfig::default()
                    .with_cookie_name("__Secure-id")
                    .with_secure(false),
                "secure",
            ),
            (
                SessionConfig::default()
                    .with_secure(false)
                    .with_same_site(SameSite::None),
                "samesite",
            ),
            (
                SessionConfig::default().with_idle_timeout(Duration::MAX),
                "range",
            ),
            (
                SessionConfig::default().with_idle_timeout(Duration::ZERO),
                "range",
            ),
            (
                SessionConfig::default().with_path("/a; Secure"),
                "attribute",
            ),
            (SessionConfig::default().with_max_size(0), "size"),
        ];
        for (c, what) in bad {
            assert!(c.validate().is_err(), "{what}: {c:?}");
        }
    }

    #[test]
    fn browser_session_cookies_have_no_max_age() {
        let c = SessionConfig::default().with_browser_session(true);
        assert!(!c.set_cookie_value("v").contains("Max-Age"));
        let short = SessionConfig::default().with_absolute_timeout(Duration::from_secs(90));
        assert!(short.set_cookie_value("v").contains("Max-Age=90"));
    }

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
