//! An L1 hit through `Tiered` against a hit on a plain `MemoryBackend`, in
//! the same run; with the `redis` feature and a reachable Redis
//! (`COVET_REDIS_URL`, default `redis://127.0.0.1:6379`), also an L1 hit of
//! a coherent `Tiered<MemoryBackend, RedisBackend>`, a read through to Redis
//! and the cost of coherence on writes.
//!
//! ```sh
//! cargo bench --bench tiered                      # memory contenders only
//! cargo bench --bench tiered --features redis     # with Redis
//! ```
//!
//! Results and how to read them: `BENCHMARKS.md`, section "Tiered".
//!
//! # Method
//!
//! Every hit contender returns the same value ([`User`], a `u64` and a
//! 10-byte `String`) for the same key, from a cache warmed before timing;
//! the run checks that every timed call was a hit. Each timed loop runs
//! `iters` awaits inside one `block_on` of a current-thread tokio runtime
//! built once (`iter_custom`), so the figure is the time of one call.
//!
//! * `tiered_hit/*`: `Cache::get::<User>` (the typed API users call).
//! * `tiered_backend_hit/*`: `CacheBackend::get` through an
//!   `Arc<dyn CacheBackend>` (bytes, no decoding): the backend alone.
//! * `tiered_redis/*` (Redis only): a miss in L1 that reads through to
//!   Redis, a plain `RedisBackend` read, and `Cache::set` with and without
//!   coherence (the `PUBLISH` round trip).
//!
//! After the hit groups, the run prints the hit ratios `tiered / memory`,
//! measured again outside criterion as the best of 7 interleaved rounds of
//! 200 000 calls each.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheBackend, MemoryBackend, Tiered};
use criterion::Criterion;
use serde::{Deserialize, Serialize};
use tokio::runtime::{Builder, Runtime};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

const KEY: &str = "user:42";

fn user() -> User {
    User {
        id: 42,
        name: "user-00042".into(),
    }
}

struct Contender {
    name: &'static str,
    cache: Cache,
}

fn cache_over(backend: impl CacheBackend) -> Cache {
    cache_in(backend, "bench-tiered")
}

fn cache_in(backend: impl CacheBackend, namespace: &str) -> Cache {
    Cache::builder()
        .backend(backend)
        .namespace(namespace)
        .build()
        .expect("valid cache configuration")
}

fn contenders(rt: &Runtime) -> Vec<Contender> {
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut out = vec![
        Contender {
            name: "memory",
            cache: cache_over(MemoryBackend::new()),
        },
        // The same with an expiry on the entry, as every L1 copy has one
        // (at most `l1_max_ttl`): moka then reads the clock on each hit.
        Contender {
            name: "memory_ttl_60s",
            cache: Cache::builder()
                .backend(MemoryBackend::new())
                .namespace("bench-tiered")
                .default_ttl(Duration::from_secs(60))
                .build()
                .expect("valid cache configuration"),
        },
        Contender {
            name: "tiered_memory_memory",
            cache: cache_over(Tiered::new(MemoryBackend::new(), MemoryBackend::new())),
        },
    ];
    #[cfg(feature = "redis")]
    if let Some(redis) = redis_l2(rt) {
        let tiered = rt
            .block_on(Tiered::coherent(MemoryBackend::new(), redis))
            .expect("subscribing to Redis");
        out.push(Contender {
            name: "tiered_memory_redis",
            cache: cache_over(tiered),
        });
    }
    rt.block_on(async {
        for c in &out {
            c.cache.set(KEY, &user(), None).await.expect("warming");
            // the first read keeps the decoded value beside the bytes
            assert_eq!(c.cache.get::<User>(KEY).await.unwrap(), Some(user()));
        }
    });
    out
}

#[cfg(feature = "redis")]
fn redis_url() -> Option<String> {
    let url = std::env::var("COVET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    std::net::TcpStream::connect(addr).ok().map(|_| url)
}

#[cfg(feature = "redis")]
fn redis_l2(rt: &Runtime) -> Option<covet::cache::RedisBackend> {
    let Some(url) = redis_url() else {
        eprintln!("Redis unreachable: the Redis contenders are skipped");
        return None;
    };
    Some(
        rt.block_on(covet::cache::RedisBackend::connect(&url))
            .expect("connecting to Redis"),
    )
}

/// Times `iters` sequential awaits of `f` inside one `block_on`.
fn timed<F, Fut>(rt: &Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f().await);
        }
        start.elapsed()
    })
}

fn hits(c: &mut Criterion, rt: &Runtime, contenders: &[Contender]) {
    let mut g = c.benchmark_group("tiered_hit");
    for ct in contenders {
        let cache = ct.cache.clone();
        let before = cache.stats().hits;
        let mut calls = 0;
        g.bench_function(ct.name, |b| {
            b.iter_custom(|iters| {
                calls += iters;
                timed(rt, iters, || cache.get::<User>(KEY))
            })
        });
        assert_eq!(
            cache.stats().hits - before,
            calls,
            "{}: every call hit",
            ct.name
        );
    }
    g.finish();

    let mut g = c.benchmark_group("tiered_backend_hit");
    for ct in contenders {
        let backend: Arc<dyn CacheBackend> = ct.cache.backend().clone();
        let key = format!("{}:{KEY}", ct.cache.namespace());
        assert!(rt.block_on(backend.get(&key)).unwrap().is_some());
        g.bench_function(ct.name, |b| {
            b.iter_custom(|iters| timed(rt, iters, || backend.get(&key)))
        });
    }
    g.finish();
}

#[cfg(feature = "redis")]
fn redis_paths(c: &mut Criterion, rt: &Runtime) {
    use covet::cache::RedisBackend;
    let Some(url) = redis_url() else {
        return;
    };
    let connect = || {
        rt.block_on(RedisBackend::connect(&url))
            .expect("connecting to Redis")
    };
    // A namespace of its own: the coherent writes below must not drop the
    // L1 copies of the hit contenders.
    let ns = "bench-tiered-redis";
    let plain = cache_in(connect(), ns);
    let coherent = rt
        .block_on(Tiered::coherent(MemoryBackend::new(), connect()))
        .expect("subscribing");
    let tiered = cache_in(coherent.clone(), ns);
    let quiet = cache_in(
        Tiered::builder(MemoryBackend::new(), connect())
            .without_coherence()
            .build()
            .unwrap(),
        ns,
    );
    let full = format!("{}:{KEY}", tiered.namespace());
    rt.block_on(async {
        plain.set(KEY, &user(), None).await.unwrap();
    });

    let value = user();
    let mut g = c.benchmark_group("tiered_redis");
    g.bench_function("redis_get", |b| {
        b.iter_custom(|iters| timed(rt, iters, || plain.get::<User>(KEY)))
    });
    // drop the L1 copy, then read through (GET + PTTL in one round trip)
    g.bench_function("tiered_read_through", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, || async {
                coherent.l1().delete(&full).await.unwrap();
                tiered.get::<User>(KEY).await
            })
        })
    });
    g.bench_function("redis_set", |b| {
        b.iter_custom(|iters| timed(rt, iters, || plain.set(KEY, &value, None)))
    });
    g.bench_function("tiered_set_without_coherence", |b| {
        b.iter_custom(|iters| timed(rt, iters, || quiet.set(KEY, &value, None)))
    });
    g.bench_function("tiered_set_coherent", |b| {
        b.iter_custom(|iters| timed(rt, iters, || tiered.set(KEY, &value, None)))
    });
    g.finish();
    rt.block_on(async {
        plain.clear().await.unwrap();
    });
}

/// How long after a write in one "process" (a coherent `Tiered` with its
/// own connections) another one has dropped its L1 copy: 1000 writes,
/// percentiles of the delay from the moment the writer's `set` returned
/// (0 when the copy was already gone), and of the whole `set` call.
#[cfg(feature = "redis")]
fn delivery() {
    use covet::cache::RedisBackend;
    let Some(url) = redis_url() else {
        return;
    };
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let start = async || {
            let redis = RedisBackend::connect(&url)
                .await
                .expect("connecting to Redis");
            let t = Tiered::coherent(MemoryBackend::new(), redis)
                .await
                .expect("subscribing");
            (cache_in(t.clone(), "bench-tiered-delivery"), t)
        };
        let (a, _ta) = start().await;
        let (b, tb) = start().await;
        let full = format!("{}:{KEY}", b.namespace());
        let (mut after_return, mut whole) = (Vec::new(), Vec::new());
        for i in 0..1000u64 {
            let value = User {
                id: i,
                name: "x".into(),
            };
            a.set(KEY, &value, None).await.unwrap();
            // let B copy it into its L1
            loop {
                if b.get::<User>(KEY).await.unwrap().map(|u| u.id) == Some(i)
                    && tb.l1().exists(&full).await.unwrap()
                {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let t0 = Instant::now();
            a.set(KEY, &user(), None).await.unwrap();
            let returned = t0.elapsed();
            while tb.l1().exists(&full).await.unwrap() {
                tokio::task::yield_now().await;
            }
            let dropped = t0.elapsed();
            whole.push(returned);
            after_return.push(dropped.saturating_sub(returned));
        }
        a.clear().await.unwrap();
        let pct = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() - 1) as f64 * p) as usize]
        };
        println!("\nCoherence, 1000 writes between two coherent tiers on one host:");
        for (name, v) in [
            ("copy dropped after set returned", &mut after_return),
            ("the writer's set (SET + PUBLISH)", &mut whole),
        ] {
            println!(
                "  {name:<34} p50 {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
                pct(v, 0.5),
                pct(v, 0.9),
                pct(v, 0.99),
                pct(v, 1.0)
            );
        }
    });
}

/// Best-of-7 interleaved rounds, outside criterion: the ratio to report.
fn ratios(rt: &Runtime, contenders: &[Contender]) {
    const CALLS: u64 = 200_000;
    let mut best = vec![Duration::MAX; contenders.len()];
    for _ in 0..7 {
        for (i, ct) in contenders.iter().enumerate() {
            let before = ct.cache.stats().hits;
            let d = timed(rt, CALLS, || ct.cache.get::<User>(KEY));
            assert_eq!(
                ct.cache.stats().hits - before,
                CALLS,
                "{}: all hits",
                ct.name
            );
            best[i] = best[i].min(d);
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / CALLS as f64;
    let base = per(best[0]);
    println!("\nL1 hit through Cache::get::<User>, best of 7 rounds of {CALLS} calls:");
    for (ct, d) in contenders.iter().zip(&best) {
        println!(
            "  {:<24} {:>7.1} ns   {:.2}x memory",
            ct.name,
            per(*d),
            per(*d) / base
        );
    }
}

fn main() {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let contenders = contenders(&rt);
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    hits(&mut c, &rt, &contenders);
    ratios(&rt, &contenders);
    #[cfg(feature = "redis")]
    redis_paths(&mut c, &rt);
    #[cfg(feature = "redis")]
    delivery();
    c.final_summary();
}
