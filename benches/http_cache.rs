//! Requests per second through `HttpCacheLayer`: the cost of a hit,
//! against the same handlers without the layer, over real HTTP on
//! loopback, in the same run.
//!
//! ```sh
//! cargo bench --bench http_cache
//! ```
//!
//! Contenders, all answering the same 1 KiB body with
//! `Cache-Control: max-age=3600`:
//! * `trivial`: a handler that returns the bytes, no layer (the floor);
//! * `trivial+layer`: the same behind `HttpCacheLayer` (every timed request
//!   is a hit);
//! * `work5ms`: a handler that takes 5 ms (a `tokio::time::sleep`) first,
//!   no layer;
//! * `work5ms+layer`: the same behind the layer (hits);
//! * `work5ms+layer(redis)`: the layer on a Redis-backed `Cache` (every hit
//!   is a Redis round trip), when `COVET_REDIS_URL` (default
//!   `redis://127.0.0.1:6379`) answers.
//!
//! Load: [`CONNECTIONS`] keep-alive connections per contender, each request
//! checked (status 200, the body, and `Cache-Status` saying `hit` behind the
//! layer). One criterion iteration is [`BATCH`] requests spread over the
//! connections, all in flight together, so criterion reports requests per
//! second; then [`ROUNDS`] interleaved rounds print each contender's best
//! and median round and the ratios. Each timed round is preceded by
//! [`WARMUP`] untimed requests to the same contender, and the order
//! alternates between rounds ([`rounds::warmed`]), as in
//! `benches/sessions.rs`.

mod common;
mod rounds;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Conn, serve};
use covet::cache::http::HttpCacheLayer;
use covet::cache::{Cache, RedisBackend};
use criterion::{Criterion, SamplingMode, Throughput};
use tokio::runtime::{Builder, Runtime};

const CONNECTIONS: usize = 16;
const BATCH: u64 = 256;
/// Interleaved rounds after criterion's group (even: see
/// [`rounds::interleave`]).
const ROUNDS: usize = 8;
/// Requests per contender and round (a multiple of `CONNECTIONS`).
const ROUND: u64 = 4096;
/// Untimed requests a contender serves just before each of its rounds.
const WARMUP: u64 = 512;

fn body() -> Bytes {
    Bytes::from(vec![b'x'; 1024])
}

async fn trivial() -> ([(&'static str, &'static str); 1], Bytes) {
    ([("cache-control", "max-age=3600")], body())
}

async fn work() -> ([(&'static str, &'static str); 1], Bytes) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    ([("cache-control", "max-age=3600")], body())
}

struct Contender {
    name: &'static str,
    cached: bool,
    conns: Vec<Conn>,
}

impl Contender {
    async fn new(name: &'static str, app: Router, cached: bool) -> Contender {
        let addr: SocketAddr = serve(app).await;
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            conns.push(Conn::connect(addr).await);
        }
        let mut c = Contender {
            name,
            cached,
            conns,
        };
        // Fill the cache, then check that a hit is what we measure.
        let mut first = c.conns.remove(0);
        first.get("/", None).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        check(name, cached, &first.get("/", None).await);
        c.conns.insert(0, first);
        c
    }

    async fn run(&mut self, requests: u64) -> Duration {
        let per_conn = requests / CONNECTIONS as u64;
        let (name, cached) = (self.name, self.cached);
        let start = Instant::now();
        let tasks: Vec<_> = self
            .conns
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    for _ in 0..per_conn {
                        let r = c.get("/", None).await;
                        check(name, cached, &r);
                    }
                    c
                })
            })
            .collect();
        for t in tasks {
            self.conns.push(t.await.expect("client task"));
        }
        start.elapsed()
    }
}

fn check(name: &str, cached: bool, r: &common::Reply) {
    assert_eq!(r.status, 200, "{name}: status");
    assert_eq!(r.body.len(), 1024, "{name}: body");
    if cached {
        let status = r
            .headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(status.starts_with("covet; hit"), "{name}: {status}");
    }
}

fn layered(route: Router, cache: Cache) -> Router {
    route.layer(HttpCacheLayer::new(cache))
}

async fn setup() -> Vec<Contender> {
    let mut out = vec![
        Contender::new("trivial", Router::new().route("/", get(trivial)), false).await,
        Contender::new(
            "trivial+layer",
            layered(Router::new().route("/", get(trivial)), Cache::memory()),
            true,
        )
        .await,
        Contender::new("work5ms", Router::new().route("/", get(work)), false).await,
        Contender::new(
            "work5ms+layer",
            layered(Router::new().route("/", get(work)), Cache::memory()),
            true,
        )
        .await,
    ];
    let url =
        std::env::var("COVET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    match RedisBackend::connect(&url).await {
        Ok(backend) => {
            let ns = format!(
                "bench-http-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            let cache = Cache::builder()
                .backend(backend)
                .namespace(ns)
                .build()
                .expect("a Redis cache");
            out.push(
                Contender::new(
                    "work5ms+layer(redis)",
                    layered(Router::new().route("/", get(work)), cache),
                    true,
                )
                .await,
            );
        }
        Err(e) => eprintln!("Redis at {url} unavailable ({e}); skipping the Redis contender"),
    }
    out
}

fn main() {
    let rt: Runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut contenders = rt.block_on(setup());
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut group = c.benchmark_group("http_cache");
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(BATCH));
        for contender in contenders.iter_mut() {
            let name = contender.name;
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += contender.run(BATCH).await;
                        }
                        total
                    })
                })
            });
        }
        group.finish();
    }
    // Interleaved rounds: each contender's best and median, and the ratios.
    let all = rounds::warmed(ROUNDS, contenders.len(), WARMUP, ROUND, |i, requests| {
        requests as f64 / rt.block_on(contenders[i].run(requests)).as_secs_f64()
    });
    let rows: Vec<(&str, f64, f64)> = contenders
        .iter()
        .zip(&all)
        .map(|(c, r)| (c.name, rounds::highest(r), rounds::median(r)))
        .collect();
    common::save_rounds("http_cache", &rows);
    println!("\n{ROUNDS} interleaved rounds of {ROUND} requests, best (median):");
    for (name, best, median) in &rows {
        println!("  {name:<22} {best:>10.0} ({median:>8.0}) req/s");
    }
    let find = |n: &str| rows.iter().find(|r| r.0 == n).map(|r| (r.1, r.2));
    if let (Some(t), Some(tl)) = (find("trivial"), find("trivial+layer")) {
        println!(
            "  a hit costs {:.2}x a trivial handler, {:.2}x in the medians (time per request; target < 2x)",
            t.0 / tl.0,
            t.1 / tl.1
        );
    }
    if let (Some(w), Some(wl)) = (find("work5ms"), find("work5ms+layer")) {
        println!(
            "  the layer serves the 5 ms handler {:.1}x faster ({:.1}x in the medians)",
            wl.0 / w.0,
            wl.1 / w.1
        );
    }
    c.final_summary();
}
