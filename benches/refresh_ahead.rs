//! Latency of a hot key across expiries, with and without the options that
//! act around a miss.
//!
//! Run with `cargo bench --bench refresh_ahead`; results are in
//! `BENCHMARKS.md` at the workspace root.
//!
//! # Method
//!
//! `hot_key`: 64 tokio tasks on a 2-worker runtime call one key of a
//! `#[cached]` fn whose body sleeps 50 ms, each call followed by a 20 ms
//! pause (3 200 calls a second in all), for 6 seconds: six expiries of its
//! 1 s TTL. Every call's latency is recorded; the run prints p50, p99,
//! p99.9 and the maximum, how many calls took longer than 10 ms (waited for
//! a body), and how many times the body ran. Variants:
//!
//! * `plain`: `ttl = "1s"`: at each expiry every caller waits for the body
//!   (coalesced into one run).
//! * `refresh_ahead`: `ttl = "1s", refresh_ahead = "300ms"`: the first call
//!   in the last 300 ms of the entry's life starts one background refresh.
//! * `stale_while_revalidate`: `ttl = "1s", stale_while_revalidate = "10s"`:
//!   after expiry, callers get the stale value while one refresh runs.
//! * `hits_only`: `ttl = "1h"`: no expiry in the run, the hit latency under
//!   the same load, for reference.
//!
//! `hit_path` (criterion): one thread, a warm key, the hit of a fn with
//! `refresh_ahead` and `stale_while_revalidate` (stamped entries: one
//! clock read more) against a plain fn.
//!
//! `COVET_BENCH_SECONDS` changes the length of each `hot_key` run.

use std::hint::black_box;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use covet::cache::Cache;
use criterion::Criterion;
use tokio::runtime::{Builder, Runtime};

const TASKS: usize = 64;
const BODY: Duration = Duration::from_millis(50);
const PAUSE: Duration = Duration::from_millis(20);

fn cache(name: &str) -> Cache {
    Cache::builder().namespace(name).build().expect("cache")
}

static PLAIN: LazyLock<Cache> = LazyLock::new(|| cache("plain"));
static AHEAD: LazyLock<Cache> = LazyLock::new(|| cache("ahead"));
static SWR: LazyLock<Cache> = LazyLock::new(|| cache("swr"));
static HITS: LazyLock<Cache> = LazyLock::new(|| cache("hits"));

static PLAIN_RUNS: AtomicU64 = AtomicU64::new(0);
static AHEAD_RUNS: AtomicU64 = AtomicU64::new(0);
static SWR_RUNS: AtomicU64 = AtomicU64::new(0);
static HITS_RUNS: AtomicU64 = AtomicU64::new(0);

async fn body(runs: &AtomicU64, id: u64) -> u64 {
    runs.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(BODY).await;
    id
}

#[covet::cached(cache = PLAIN, key = "hot:{id}", ttl = "1s")]
async fn plain(id: u64) -> u64 {
    body(&PLAIN_RUNS, id).await
}

#[covet::cached(cache = AHEAD, key = "hot:{id}", ttl = "1s", refresh_ahead = "300ms")]
async fn ahead(id: u64) -> u64 {
    body(&AHEAD_RUNS, id).await
}

#[covet::cached(cache = SWR, key = "hot:{id}", ttl = "1s", stale_while_revalidate = "10s")]
async fn swr(id: u64) -> u64 {
    body(&SWR_RUNS, id).await
}

#[covet::cached(cache = HITS, key = "hot:{id}", ttl = "1h")]
async fn hits_only(id: u64) -> u64 {
    body(&HITS_RUNS, id).await
}

fn runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Latencies in nanoseconds, sorted.
fn hot_key<F, Fut>(rt: &Runtime, run_for: Duration, call: F) -> Vec<u64>
where
    F: Fn() -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    rt.block_on(async move {
        call().await; // warm: the first fill is not measured
        let end = Instant::now() + run_for;
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(1024);
                    while Instant::now() < end {
                        let start = Instant::now();
                        black_box(call().await);
                        samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
                        tokio::time::sleep(PAUSE).await;
                    }
                    samples
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("task"));
        }
        all.sort_unstable();
        all
    })
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_nanos(sorted[index.min(sorted.len() - 1)])
}

fn report(name: &str, samples: &[u64], runs: &AtomicU64) {
    let slow = samples.iter().filter(|&&ns| ns > 10_000_000).count();
    println!(
        "hot_key/{name:<24} calls {:>6}  p50 {:>10.1?}  p99 {:>10.1?}  p99.9 {:>10.1?}  max {:>10.1?}  >10ms {:>4}  body runs {}",
        samples.len(),
        percentile(samples, 0.50),
        percentile(samples, 0.99),
        percentile(samples, 0.999),
        percentile(samples, 1.0),
        slow,
        runs.load(Ordering::Relaxed),
    );
}

fn hot_keys() {
    let seconds = std::env::var("COVET_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let run_for = Duration::from_secs(seconds);
    let rt = runtime();
    let samples = hot_key(&rt, run_for, || hits_only(1));
    report("hits_only", &samples, &HITS_RUNS);
    let samples = hot_key(&rt, run_for, || plain(1));
    report("plain", &samples, &PLAIN_RUNS);
    let samples = hot_key(&rt, run_for, || ahead(1));
    report("refresh_ahead", &samples, &AHEAD_RUNS);
    let samples = hot_key(&rt, run_for, || swr(1));
    report("stale_while_revalidate", &samples, &SWR_RUNS);
}

#[covet::cached(cache = HITS, key = "warm-plain:{id}", ttl = "1h")]
async fn warm_plain(id: u64) -> u64 {
    id
}

#[covet::cached(
    cache = HITS,
    key = "warm-stamped:{id}",
    ttl = "1h",
    refresh_ahead = "1m",
    stale_while_revalidate = "1m"
)]
async fn warm_stamped(id: u64) -> u64 {
    id
}

fn hit_path(c: &mut Criterion) {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        warm_plain(42).await;
        warm_stamped(42).await;
    });
    let mut group = c.benchmark_group("hit_path");
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(warm_plain(black_box(42)).await);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("stamped", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(warm_stamped(black_box(42)).await);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn main() {
    hot_keys();
    let mut c = Criterion::default().configure_from_args();
    hit_path(&mut c);
    c.final_summary();
}
