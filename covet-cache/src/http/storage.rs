//! Reading and writing stored responses in the [`Cache`]: the primary key
//! of a URI holds the response, or for a response with `Vary` an index
//! (the header names, a generation, the variants stored) with each
//! variant at `<primary> #<generation>:<hash of the values>`. A response
//! to `HEAD`, stored only while no `GET` is, lives under `<primary> @head`
//! (the same layout below it).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;

use super::bounds::Bounds;
use super::config::Shared;
use super::invalidation;
use super::key::{base_key, fnv64, vary_values};
use super::policy::retention;
use super::stored::{HttpEntry, StoredResponse};
use crate::Cache;

/// Where a response to `HEAD` for `primary` is stored.
pub(crate) fn head_key(primary: &str) -> String {
    format!("{primary} @head")
}

fn variant_key(primary: &str, generation: u64, hash: u64) -> String {
    format!("{primary} #{generation:x}:{hash:x}")
}

fn new_generation() -> u64 {
    std::hash::RandomState::new().hash_one(SystemTime::now())
}

/// What a lookup found.
pub(crate) enum Found {
    /// A stored response for these request headers.
    Stored(Arc<StoredResponse>),
    UriMiss,
    /// An index exists but not for these header values.
    VaryMiss,
}

async fn read(cache: &Cache, key: &str) -> Option<HttpEntry> {
    match cache.get::<HttpEntry>(key).await {
        Ok(v) => v,
        Err(err) => {
            tracing::warn!(error = %err, "HTTP cache read failed; forwarding the request");
            None
        }
    }
}

pub(crate) async fn find(shared: &Shared, primary: &str, headers: &HeaderMap) -> Found {
    let cache = &shared.cache;
    let touch = |key: &str| {
        if let Some(b) = &shared.bounds {
            b.touch(key);
        }
    };
    match read(cache, primary).await {
        None => Found::UriMiss,
        Some(HttpEntry::Response(r)) => {
            touch(primary);
            Found::Stored(r)
        }
        Some(HttpEntry::Variants {
            vary, generation, ..
        }) => {
            let values = vary_values(&vary, headers, &shared.config.ignore_cookies);
            let key = variant_key(primary, generation, fnv64(&values));
            match read(cache, &key).await {
                Some(HttpEntry::Response(r)) if r.vary == vary && r.vary_values == values => {
                    touch(primary);
                    touch(&key);
                    Found::Stored(r)
                }
                _ => Found::VaryMiss,
            }
        }
    }
}

/// Whether `r` was stored for requests with these headers.
pub(crate) fn matches_request(shared: &Shared, r: &StoredResponse, headers: &HeaderMap) -> bool {
    r.vary_values == vary_values(&r.vary, headers, &shared.config.ignore_cookies)
}

fn log_failure(result: crate::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "storing an HTTP response failed");
            false
        }
    }
}

/// Writes `r` under `primary` (with the variant index for responses with
/// `Vary`, keeping at most `max_variants` of them), unless an invalidation
/// since `since` covers the key; then nothing stays written. Failures are
/// logged, never returned. Whether `r` is stored.
pub(crate) async fn store(
    shared: &Shared,
    primary: &str,
    since: u64,
    r: Arc<StoredResponse>,
) -> bool {
    let cache = &shared.cache;
    let full = format!("{}{primary}", cache.prefix());
    if invalidation::invalidated_since(since, &full) {
        return false;
    }
    let size = r.approx_size();
    if let Some(b) = &shared.bounds
        && !b.fits(Bounds::cost(primary, size))
    {
        return false;
    }
    let ttl = retention(&r, &shared.config);
    // What the layer's bounds push out to make room for what was written.
    let mut over: Vec<String> = Vec::new();
    let mut admit = |key: &str, bytes: usize| {
        if let Some(b) = &shared.bounds {
            over.extend(b.admit(key, Bounds::cost(key, bytes)));
        }
    };
    let written = if r.vary.is_empty() {
        let ok = log_failure(
            cache
                .set(primary, &HttpEntry::Response(r.clone()), Some(ttl))
                .await,
        );
        if ok {
            admit(primary, size);
        }
        ok
    } else {
        let hash = fnv64(&r.vary_values);
        let (generation, mut variants) = match read(cache, primary).await {
            Some(HttpEntry::Variants {
                vary,
                generation,
                variants,
            }) if vary == r.vary => (generation, variants),
            _ => (new_generation(), Vec::new()),
        };
        let mut evicted = Vec::new();
        if !variants.contains(&hash) {
            variants.push(hash);
            let max = shared.config.max_variants.max(1);
            while variants.len() > max {
                evicted.push(variants.remove(0));
            }
        }
        let index_size = 16 * variants.len() + r.vary.iter().map(String::len).sum::<usize>();
        let index = HttpEntry::Variants {
            vary: r.vary.clone(),
            generation,
            variants,
        };
        let key = variant_key(primary, generation, hash);
        let ok = log_failure(cache.set(primary, &index, Some(ttl)).await)
            && log_failure(
                cache
                    .set(&key, &HttpEntry::Response(r.clone()), Some(ttl))
                    .await,
            );
        if ok {
            admit(primary, index_size);
            admit(&key, size);
        }
        for old in evicted {
            drop_key(shared, &variant_key(primary, generation, old)).await;
        }
        ok
    };
    for key in over {
        if let Err(err) = cache.delete(&key).await {
            tracing::warn!(error = %err, "evicting an HTTP response failed");
        }
    }
    if written && invalidation::invalidated_since(since, &full) {
        // The invalidation landed while we wrote: it wins.
        remove(shared, primary).await;
        return false;
    }
    written
}

/// Deletes `key` from the cache and from the layer's bounds.
async fn drop_key(shared: &Shared, key: &str) {
    if let Some(b) = &shared.bounds {
        b.forget(key);
    }
    if let Err(err) = shared.cache.delete(key).await {
        tracing::warn!(error = %err, "removing a stored HTTP response failed");
    }
}

/// Deletes what `primary` holds (the response, or the variant index, which
/// makes every variant unreachable).
pub(crate) async fn remove(shared: &Shared, primary: &str) {
    drop_key(shared, primary).await;
}

/// Invalidates `keys` and the `HEAD` responses stored beside them:
/// recorded first (so stores that started earlier are dropped), then
/// deleted.
pub(crate) async fn invalidate_keys(shared: &Shared, keys: &[String]) {
    let keys: Vec<String> = keys.iter().flat_map(|k| [k.clone(), head_key(k)]).collect();
    let prefix = shared.cache.prefix();
    for k in &keys {
        invalidation::record_key(format!("{prefix}{k}"));
    }
    for k in &keys {
        remove(shared, k).await;
    }
}

/// Removes every response stored for `uri` under `prefix` (every variant,
/// every forwarding header and key extension); a path removes it for every
/// scheme and host.
pub(crate) async fn invalidate_uri(
    cache: &Cache,
    prefix: &str,
    bounds: Option<&Bounds>,
    uri: &str,
) -> crate::Result<u64> {
    let invalid = || crate::Error::InvalidKey {
        key: uri.chars().take(64).collect(),
        reason: "not a URI",
    };
    let parsed: http::Uri = uri.parse().map_err(|_| invalid())?;
    let esc = crate::key::escape_glob;
    let exact = if parsed.authority().is_some() {
        esc(&base_key(prefix, &parsed).ok_or_else(invalid)?)
    } else {
        let pq = parsed.path_and_query().map_or("/", |p| p.as_str());
        format!("{}*://*{}", esc(prefix), esc(pq))
    };
    let patterns = [exact.clone(), format!("{exact} *")];
    let namespace = esc(cache.prefix());
    for p in &patterns {
        invalidation::record_pattern(&format!("{namespace}{p}"));
    }
    if let Some(b) = bounds {
        for p in &patterns {
            if let Ok(glob) = crate::key::Glob::new(p) {
                b.forget_matching(&glob);
            }
        }
    }
    let mut removed = 0;
    for p in &patterns {
        removed += cache.delete_pattern(p).await?;
    }
    Ok(removed)
}
