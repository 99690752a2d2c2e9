//! What a layer is configured with, and what its services share.

use super::directives::ResponseDirectives;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use http::request::Parts;
use tokio::sync::{Notify, Semaphore};

use super::bounds::Bounds;
use super::flight::HttpFlights;
use crate::Cache;

/// The key prefix of stored responses, inside the cache's namespace.
pub const DEFAULT_KEY_PREFIX: &str = "http:";
/// Bodies larger than this stream through without being stored.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1 << 20;
/// How long a response is kept once stale: for revalidation with its
/// validator, or for clients that accept stale responses (`max-stale`).
pub const DEFAULT_STALE_RETENTION: Duration = Duration::from_secs(10 * 60);
/// The cache name in `Cache-Status`.
pub const DEFAULT_CACHE_NAME: &str = "covet";
/// How many `Vary` variants of one URI are kept at most.
pub const DEFAULT_MAX_VARIANTS: usize = 16;
/// How long a request waits for a coalesced origin request of another
/// before it goes to the origin itself.
pub const DEFAULT_COALESCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many background refreshes (`stale-while-revalidate`) one layer runs
/// at once.
pub const DEFAULT_MAX_BACKGROUND_REFRESHES: usize = 64;

pub(crate) type KeyExtension = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;
pub(crate) type KeyUri = Arc<dyn Fn(&Parts) -> Uri + Send + Sync>;

/// Which requests count as private: what a request with credentials may
/// get from the cache, and which of its responses may be stored. Set with
/// [`HttpCacheLayer::private_requests`](super::HttpCacheLayer::private_requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PrivateRequests {
    /// The default. A request with `Cookie` (other than the
    /// [ignored](super::HttpCacheLayer::ignore_cookies) ones),
    /// `Authorization` or `Proxy-Authorization` is answered from the
    /// cache, and its response stored, only when the response is
    /// explicitly shareable: `public`, `s-maxage`, or
    /// [`CachePolicy::Store`](super::CachePolicy::Store). A default TTL,
    /// the `Last-Modified` heuristic or `must-revalidate` never make it
    /// shareable.
    #[default]
    Explicit,
    /// RFC 9111 as written, for apps whose responses never depend on
    /// cookies: `Cookie` is not looked at, and a request with
    /// `Authorization` gets and stores only responses marked `public`,
    /// `s-maxage` or `must-revalidate` (§3.5).
    Rfc9111,
}

impl PrivateRequests {
    pub(crate) fn counts_cookies(self) -> bool {
        self == PrivateRequests::Explicit
    }
}

/// Forwarding headers that a proxy in front of the app sets on every
/// request (overwriting what clients send): the layer then takes the
/// scheme and host of its keys from them. Set with
/// [`HttpCacheLayer::trusted_forwarding`](super::HttpCacheLayer::trusted_forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forwarding {
    /// `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Port`.
    XForwarded,
    /// `Forwarded` (RFC 7239): `proto=` and `host=` of the last element.
    Forwarded,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) max_body_size: usize,
    pub(crate) key_prefix: String,
    pub(crate) key_extension: Option<KeyExtension>,
    pub(crate) key_uri: Option<KeyUri>,
    pub(crate) allow_set_cookie: bool,
    pub(crate) opt_in: bool,
    pub(crate) stale_retention: Duration,
    pub(crate) cache_name: String,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_timeout: Duration,
    pub(crate) max_background_refreshes: usize,
    pub(crate) ignore_cookies: Vec<String>,
    pub(crate) private_requests: PrivateRequests,
    pub(crate) allowed_hosts: Option<Vec<String>>,
    pub(crate) trusted_forwarding: Option<Forwarding>,
    pub(crate) max_variants: usize,
    pub(crate) vary_by_credentials: bool,
    /// Targeted cache-control fields (RFC 9213), most specific first.
    pub(crate) targeted: Vec<http::HeaderName>,
    /// This layer's own part of the key space (a key part `p=<name>`).
    pub(crate) partition: Option<String>,
    pub(crate) max_entries: Option<usize>,
    pub(crate) max_bytes: Option<u64>,
}

impl Config {
    /// The directives this cache obeys for a response: the first targeted
    /// field it carries as a valid dictionary, else `Cache-Control`.
    pub(crate) fn response_directives(&self, headers: &http::HeaderMap) -> ResponseDirectives {
        if !self.targeted.is_empty()
            && let Some(d) = ResponseDirectives::targeted(headers, &self.targeted)
        {
            return d;
        }
        ResponseDirectives::from_headers(headers)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_ttl: None,
            negative_ttl: None,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            key_extension: None,
            key_uri: None,
            allow_set_cookie: false,
            opt_in: false,
            stale_retention: DEFAULT_STALE_RETENTION,
            cache_name: DEFAULT_CACHE_NAME.to_owned(),
            coalesce: true,
            coalesce_timeout: DEFAULT_COALESCE_TIMEOUT,
            max_background_refreshes: DEFAULT_MAX_BACKGROUND_REFRESHES,
            ignore_cookies: Vec::new(),
            private_requests: PrivateRequests::default(),
            allowed_hosts: None,
            trusted_forwarding: None,
            max_variants: DEFAULT_MAX_VARIANTS,
            targeted: Vec::new(),
            vary_by_credentials: false,
            partition: None,
            max_entries: None,
            max_bytes: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("default_ttl", &self.default_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_body_size", &self.max_body_size)
            .field("key_prefix", &self.key_prefix)
            .field("key_extension", &self.key_extension.is_some())
            .field("key_uri", &self.key_uri.is_some())
            .field("allow_set_cookie", &self.allow_set_cookie)
            .field("opt_in", &self.opt_in)
            .field("stale_retention", &self.stale_retention)
            .field("cache_name", &self.cache_name)
            .field("coalesce", &self.coalesce)
            .field("coalesce_timeout", &self.coalesce_timeout)
            .field("max_background_refreshes", &self.max_background_refreshes)
            .field("ignore_cookies", &self.ignore_cookies)
            .field("private_requests", &self.private_requests)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("trusted_forwarding", &self.trusted_forwarding)
            .field("max_variants", &self.max_variants)
            .field("vary_by_credentials", &self.vary_by_credentials)
            .field("targeted", &self.targeted)
            .field("partition", &self.partition)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Config {
    /// The freshness a response of `status` gets when the origin gave none:
    /// `default_ttl` for the shareable 2xx and 3xx statuses, `negative_ttl`
    /// for 404 and 410, nothing for the rest.
    pub(crate) fn default_ttl_for(&self, status: http::StatusCode) -> Option<Duration> {
        match status.as_u16() {
            200 | 203 | 204 | 300 | 301 | 308 => self.default_ttl,
            404 | 410 => self.negative_ttl,
            _ => None,
        }
    }
}

/// What every clone of one layer's services shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cache: Cache,
    pub(crate) config: Config,
    pub(crate) flights: HttpFlights,
    pub(crate) refreshes: Arc<Semaphore>,
    /// Stores and background refreshes in progress.
    pub(crate) pending: Arc<Pending>,
    /// `max_entries` / `max_bytes`, when set.
    pub(crate) bounds: Option<Bounds>,
}

impl Shared {
    pub(crate) fn new(cache: Cache, config: Config) -> Shared {
        let refreshes = Arc::new(Semaphore::new(config.max_background_refreshes));
        let bounds = Bounds::new(config.max_entries, config.max_bytes);
        Shared {
            cache,
            config,
            flights: HttpFlights::default(),
            refreshes,
            pending: Arc::default(),
            bounds,
        }
    }

    /// The largest body this layer stores: `max_body_size`, and no more
    /// than `max_bytes` allows.
    pub(crate) fn body_limit(&self) -> usize {
        match self.config.max_bytes {
            Some(max) => self
                .config
                .max_body_size
                .min(usize::try_from(max).unwrap_or(usize::MAX)),
            None => self.config.max_body_size,
        }
    }
}

/// Counts the work a layer does after a response left it (reading and
/// storing a body, background refreshes), so that
/// [`HttpCacheLayer::settled`](super::HttpCacheLayer::settled) can wait
/// for it.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Pending {
    /// Counts one piece of work until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> PendingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        PendingGuard(self.clone())
    }

    /// Resolves once nothing is in progress.
    pub(crate) async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One piece of work in progress (see [`Pending`]).
#[derive(Debug)]
pub(crate) struct PendingGuard(Arc<Pending>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
