//! Throughput of `RedisBackend` against `redis-benchmark` on the same
//! server in the same run.
//!
//! Run with `cargo bench --bench redis --features redis`; results and how
//! to read them are in `BENCHMARKS.md` ("Redis backend").
//!
//! # Method
//!
//! * The server is `COVET_REDIS_URL` (default `redis://127.0.0.1:6379`).
//! * `redis-benchmark -h HOST -p PORT -c 64 -d 1000 -t get,set -n 100000 -q`
//!   runs before and after our measurements; the better of its two runs is
//!   the reference for each command.
//! * Ours: 64 tokio tasks on a 2-worker multi-thread runtime share one
//!   `RedisBackend` (one multiplexed connection). Each task loops over
//!   `set(key, 1000-byte value, ttl)` / `get(key)` / `get_many(100 keys)`
//!   until the time is up; the figure is completed operations per second of
//!   wall time. Each measurement runs 1 s of warm-up, then `ROUNDS` rounds
//!   of `ROUND` each; the median round is reported.
//! * For reference, the same loops on a bare `redis` crate
//!   `MultiplexedConnection` (no timeout, no breaker, no `Bytes`), to show
//!   what our layer costs, and on one `fred` client (the client
//!   tower-sessions' Redis store uses), to show how the two client
//!   libraries compare on the same server, runtime and load.
//! * Beside each median, the CPU time per operation over the measured
//!   rounds, of this process and of the Redis server when it runs on this
//!   machine (`/proc/<pid>/task/*/schedstat`): on 2 vCPUs it moves much
//!   less between runs than the rates.
//! * Keys live under a unique namespace and are deleted at the end.
//!
//! `COVET_BENCH_ROUND_MS` and `COVET_BENCH_ROUNDS` shorten or lengthen the run.

mod cpu;
mod load;

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use covet::cache::{CacheBackend, RedisBackend};
use tokio::runtime::Runtime;
use tower_sessions_redis_store::fred::prelude::{
    Client as FredClient, ClientLike, Config as FredConfig, Expiration, KeysInterface,
};

use load::throughput;

const VALUE_LEN: usize = 1000;
const KEYS: usize = 1000;
const BATCH: usize = 100;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Warm-up, then the median of `rounds` rounds, and the CPU time per
/// operation over those rounds of this process and of the Redis server.
/// Returns the median and the number of operations done in all (warm-up
/// included).
fn measure<F, Fut>(rt: &Runtime, name: &str, round: Duration, rounds: usize, op: F) -> (f64, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (mut total, _) = throughput(rt, Duration::from_secs(1), op.clone());
    let (self_before, redis_before) = cpu::now();
    let mut measured = 0;
    let mut figures: Vec<f64> = (0..rounds)
        .map(|_| {
            let (n, rate) = throughput(rt, round, op.clone());
            total += n;
            measured += n;
            rate
        })
        .collect();
    let (self_after, redis_after) = cpu::now();
    figures.sort_by(f64::total_cmp);
    let median = figures[figures.len() / 2];
    let shown: Vec<String> = figures.iter().map(|f| format!("{f:.0}")).collect();
    println!(
        "{name:<44} {median:>10.0} ops/s   CPU µs/op {} + Redis {}   (rounds: {})",
        cpu::per_op(cpu::used(self_before, self_after), measured),
        cpu::per_op(cpu::used(redis_before, redis_after), measured),
        shown.join(", ")
    );
    (median, total)
}

/// `calls` of one command from the server's `INFO commandstats`.
fn server_calls(rt: &Runtime, conn: &redis::aio::MultiplexedConnection, cmd: &str) -> u64 {
    let mut conn = conn.clone();
    let info: String = rt
        .block_on(
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn),
        )
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// `(SET, GET)` requests per second from one `redis-benchmark` run
/// (`-P pipeline` when given).
fn redis_benchmark(host: &str, port: u16, pipeline: Option<u32>) -> Option<(f64, f64)> {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", host, "-p", &port.to_string()]).args([
        "-c", "64", "-d", "1000", "-t", "get,set", "-n", "100000", "-q",
    ]);
    if let Some(p) = pipeline {
        cmd.args(["-P", &p.to_string()]);
    }
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |cmd: &str| {
        text.split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .find_map(|l| l.strip_prefix(cmd)?.split_whitespace().next()?.parse().ok())
    };
    Some((rps("SET: ")?, rps("GET: ")?))
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap_or("127.0.0.1:6379");
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(6379)),
        None => (hostport.to_owned(), 6379),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let url = std::env::var("COVET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let (host, port) = host_port(&url);
    let round = Duration::from_millis(env_u64("COVET_BENCH_ROUND_MS", 2000));
    let rounds = env_u64("COVET_BENCH_ROUNDS", 5).max(1) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let before = redis_benchmark(&host, port, None);
    match before {
        Some((set, get)) => {
            println!(
                "redis-benchmark (before)                     SET {set:.0} rps, GET {get:.0} rps"
            )
        }
        None => println!("redis-benchmark: not available"),
    }

    let backend = rt
        .block_on(RedisBackend::connect(&url))
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let ns = format!("bench-redis-{}-{stamp:x}:", std::process::id());
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("{ns}k{i}")).collect());
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let ttl = Some(Duration::from_secs(600));
    rt.block_on(async {
        let entries: Vec<(&str, Bytes)> =
            keys.iter().map(|k| (k.as_str(), value.clone())).collect();
        backend.set_many(&entries, ttl).await.expect("filling keys");
    });

    let key_of = {
        let keys = keys.clone();
        move |t: usize, i: u64| keys[(t * 7919 + i as usize) % KEYS].clone()
    };

    // A bare connection: the reference loops below, and the server's own
    // count of the commands we sent.
    let raw = rt.block_on(async {
        redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    });
    let info: String = rt
        .block_on(
            redis::cmd("INFO")
                .arg("server")
                .query_async(&mut raw.clone()),
        )
        .expect("INFO server");
    cpu::watch_redis(&info);
    let check = |cmd: &str, before: u64, ops: u64, per_op: u64| {
        let seen = server_calls(&rt, &raw, cmd) - before;
        println!("    server counted {seen} {cmd} for {ops} operations");
        // `>=`: other clients of a shared server may send the same command.
        assert!(seen >= ops * per_op, "every operation reached the server");
    };

    let calls = server_calls(&rt, &raw, "set");
    let (set, ops) = {
        let (b, v, key_of) = (backend.clone(), value.clone(), key_of.clone());
        measure(
            &rt,
            "covet RedisBackend::set, 1000 B, PX",
            round,
            rounds,
            move |t, i| {
                let (b, v, k) = (b.clone(), v.clone(), key_of(t, i));
                async move { b.set(&k, v, ttl).await.expect("set") }
            },
        )
    };
    check("set", calls, ops, 1);
    let calls = server_calls(&rt, &raw, "get");
    let (get, ops) = {
        let (b, key_of) = (backend.clone(), key_of.clone());
        measure(
            &rt,
            "covet RedisBackend::get, 1000 B",
            round,
            rounds,
            move |t, i| {
                let (b, k) = (b.clone(), key_of(t, i));
                async move {
                    let v = b.get(&k).await.expect("get");
                    assert_eq!(v.map(|v| v.len()), Some(VALUE_LEN));
                }
            },
        )
    };
    check("get", calls, ops, 1);
    let calls = server_calls(&rt, &raw, "mget");
    let (get_many, ops) = {
        let (b, keys) = (backend.clone(), keys.clone());
        measure(
            &rt,
            "covet RedisBackend::get_many, 100 x 1000 B",
            round,
            rounds,
            move |t, i| {
                let (b, keys) = (b.clone(), keys.clone());
                async move {
                    let start = (t * 13 + i as usize) % (KEYS - BATCH);
                    let refs: Vec<&str> = keys[start..start + BATCH]
                        .iter()
                        .map(String::as_str)
                        .collect();
                    let got = b.get_many(&refs).await.expect("get_many");
                    assert_eq!(got.len(), BATCH);
                }
            },
        )
    };
    check("mget", calls, ops, 1);

    // The bare client, same loops: what our layer costs.
    let (raw_set, _) = {
        let (c, v, key_of) = (raw.clone(), value.clone(), key_of.clone());
        measure(
            &rt,
            "bare redis crate SET PX, 1000 B",
            round,
            rounds,
            move |t, i| {
                let (mut c, v, k) = (c.clone(), v.clone(), key_of(t, i));
                async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(&v[..])
                        .arg("PX")
                        .arg(600_000)
                        .query_async::<()>(&mut c)
                        .await
                        .expect("raw set")
                }
            },
        )
    };
    let (raw_get, _) = {
        let (c, key_of) = (raw.clone(), key_of.clone());
        measure(
            &rt,
            "bare redis crate GET, 1000 B",
            round,
            rounds,
            move |t, i| {
                let (mut c, k) = (c.clone(), key_of(t, i));
                async move {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&k)
                        .query_async(&mut c)
                        .await
                        .expect("raw get");
                    assert_eq!(v.map(|v| v.len()), Some(VALUE_LEN));
                }
            },
        )
    };

    // The other client library, same loops.
    let fred = rt.block_on(async {
        let client = FredClient::new(
            FredConfig::from_url(&url).expect("fred config from the URL"),
            None,
            None,
            None,
        );
        client.init().await.expect("fred connection");
        client
    });
    let (fred_set, _) = {
        let (c, v, key_of) = (fred.clone(), value.clone(), key_of.clone());
        measure(&rt, "fred SET PX, 1000 B", round, rounds, move |t, i| {
            let (c, v, k) = (c.clone(), v.clone(), key_of(t, i));
            async move {
                c.set::<(), _, _>(k, v, Some(Expiration::PX(600_000)), None, false)
                    .await
                    .expect("fred set")
            }
        })
    };
    let (fred_get, _) = {
        let (c, key_of) = (fred.clone(), key_of.clone());
        measure(&rt, "fred GET, 1000 B", round, rounds, move |t, i| {
            let (c, k) = (c.clone(), key_of(t, i));
            async move {
                let v: Option<Vec<u8>> = c.get(k).await.expect("fred get");
                assert_eq!(v.map(|v| v.len()), Some(VALUE_LEN));
            }
        })
    };
    let _ = rt.block_on(fred.quit());

    let after = redis_benchmark(&host, port, None);
    if let Some((set, get)) = after {
        println!("redis-benchmark (after)                      SET {set:.0} rps, GET {get:.0} rps");
    }
    // The server's ceiling: 16 requests in flight per connection.
    let pipelined = redis_benchmark(&host, port, Some(16));
    if let Some((set, get)) = pipelined {
        println!("redis-benchmark -P 16 (server ceiling)       SET {set:.0} rps, GET {get:.0} rps");
    }
    let removed = rt
        .block_on(backend.clear(&ns))
        .expect("deleting the bench keys");
    println!("deleted {removed} bench keys");

    println!();
    println!(
        "| operation | covet ops/s | bare redis crate ops/s | fred ops/s | redis-benchmark rps (best of 2) | covet / redis-benchmark |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let best = match (before, after) {
        (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    };
    let row = |name: &str, ours: f64, bare: f64, fred: f64, reference: Option<f64>| match reference
    {
        Some(r) => println!(
            "| {name} | {ours:.0} | {bare:.0} | {fred:.0} | {r:.0} | {:.0} % |",
            100.0 * ours / r
        ),
        None => println!("| {name} | {ours:.0} | {bare:.0} | {fred:.0} | n/a | n/a |"),
    };
    row("SET 1000 B", set, raw_set, fred_set, best.map(|b| b.0));
    row("GET 1000 B", get, raw_get, fred_get, best.map(|b| b.1));
    println!(
        "| get_many 100 x 1000 B | {get_many:.0} ({:.0} keys/s) | | | | |",
        get_many * BATCH as f64
    );
}
