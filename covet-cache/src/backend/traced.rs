//! Every call a `Cache` makes to its backend runs in a `debug` span
//! `covet.cache` (target `covet::backend`) with the backend, the operation,
//! the cache's namespace, a short hash of the key (never the key), the
//! outcome and the duration in microseconds. When no subscriber wants that
//! span, the call pays one check of the callsite's interest.
//!
//! Not traced: the in-memory fast path of a hit (it never reaches the
//! backend). Remote backends add their own `covet.backend` span inside it
//! (the command, its outcome and duration).

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CacheBackend, Capabilities, Entry, KeyTtl};
use crate::Result;

const TARGET: &str = "covet::backend";

/// A backend whose calls are traced (see the [module docs](self)).
pub(crate) struct Traced {
    inner: Arc<dyn CacheBackend>,
    namespace: Arc<str>,
}

impl std::fmt::Debug for Traced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// A short, stable hash of a key for spans and log events: 8 hex digits,
/// never the key.
pub(crate) fn key_hash<K: std::fmt::Display + ?Sized>(key: &K) -> String {
    let h = foldhash::fast::FixedState::with_seed(0x636f_7665_745f_6b79).hash_one(key.to_string());
    format!("{:08x}", h >> 32)
}

impl Traced {
    pub(crate) fn new(inner: Arc<dyn CacheBackend>, namespace: &str) -> Traced {
        Traced {
            inner,
            namespace: namespace.into(),
        }
    }

    async fn run<T>(
        &self,
        op: &'static str,
        key: Option<&str>,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            return call.await;
        }
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            target: TARGET,
            "covet.cache",
            backend = self.inner.name(),
            op,
            namespace = &*self.namespace,
            key = key.map(key_hash::<str>),
            outcome = tracing::field::Empty,
            micros = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = call.instrument(span.clone()).await;
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        span.record(
            "micros",
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
        result
    }
}

#[async_trait]
impl CacheBackend for Traced {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.run("get", Some(key), self.inner.get(key)).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.run("get_many", None, self.inner.get_many(keys)).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.run("set", Some(key), self.inner.set(key, value, ttl))
            .await
    }
    async fn set_entry(&self, key: &str, entry: Entry<'_>) -> Result<()> {
        self.run("set", Some(key), self.inner.set_entry(key, entry))
            .await
    }
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.run("set_many", None, self.inner.set_many(entries, ttl))
            .await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.run("delete", Some(key), self.inner.delete(key)).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.run("delete_many", None, self.inner.delete_many(keys))
            .await
    }
    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        self.run("delete_pattern", None, self.inner.delete_pattern(pattern))
            .await
    }
    async fn count_pattern(&self, pattern: &str) -> Result<u64> {
        self.run("count_pattern", None, self.inner.count_pattern(pattern))
            .await
    }
    async fn clear(&self, prefix: &str) -> Result<u64> {
        self.run("clear", None, self.inner.clear(prefix)).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.run("exists", Some(key), self.inner.exists(key)).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.run("ttl", Some(key), self.inner.ttl(key)).await
    }
    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.run("incr", Some(key), self.inner.incr(key, delta, ttl))
            .await
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.run("invalidate_tag", Some(tag), self.inner.invalidate_tag(tag))
            .await
    }
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, KeyTtl)>> {
        self.run("get", Some(key), self.inner.get_with_ttl(key))
            .await
    }
    async fn invalidate_tag_keys(&self, tag: &str) -> Result<(u64, Option<Vec<String>>)> {
        self.run(
            "invalidate_tag",
            Some(tag),
            self.inner.invalidate_tag_keys(tag),
        )
        .await
    }
    async fn lease_try(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.run("lease", Some(key), self.inner.lease_try(key, token, ttl))
            .await
    }
    async fn lease_acquire(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        self.run("lease", Some(key), self.inner.lease_acquire(key, ttl))
            .await
    }
    async fn lease_renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.run(
            "lease_renew",
            Some(key),
            self.inner.lease_renew(key, token, ttl),
        )
        .await
    }
    async fn lease_release(&self, key: &str, token: &str) -> Result<bool> {
        self.run(
            "lease_release",
            Some(key),
            self.inner.lease_release(key, token),
        )
        .await
    }
    fn supports_leases(&self) -> bool {
        self.inner.supports_leases()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn sweep(&self) -> Result<u64> {
        self.run("sweep", None, self.inner.sweep()).await
    }
    #[cfg(feature = "memory")]
    fn local(&self) -> Option<&super::memory::MemoryBackend> {
        self.inner.local()
    }
    fn is_local_only(&self) -> bool {
        self.inner.is_local_only()
    }
    fn evictions(&self) -> u64 {
        self.inner.evictions()
    }
}
