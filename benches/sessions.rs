//! Requests per second of an axum handler that reads and writes one session
//! key, through covet's `SessionLayer` and through tower-sessions, each on a
//! memory store and on Redis, over real HTTP on loopback, in the same run.
//!
//! ```sh
//! cargo bench --bench sessions --features redis,axum
//! ```
//!
//! Results and how to read them: `BENCHMARKS.md`, section "Sessions: load +
//! save through the layer".
//!
//! # Method
//!
//! * Every contender serves the same handler logic (read `n`, default 0,
//!   write `n + 1`, answer `n` as text) with `axum::serve` on its own
//!   `127.0.0.1:0` listener (`TCP_NODELAY`), in one 2-worker multi-thread
//!   tokio runtime that also runs the clients.
//! * Contenders: a plain handler without sessions (the floor), covet's
//!   `SessionLayer` on `MemoryStore` and on `RedisStore`, tower-sessions
//!   0.15's `SessionManagerLayer` on its `MemoryStore`, and tower-sessions
//!   0.14's layer on `tower-sessions-redis-store` 0.16 (a `fred` client).
//!   The Redis store is built on tower-sessions-core 0.14, hence the 0.14
//!   layer; its code differs from 0.15 only in how `insert` orders two
//!   statements and in the `rand` version. Both sides use an idle expiry of
//!   one hour and one Redis connection (covet's multiplexed connection, one
//!   `fred::Client`).
//! * Load: [`CONNECTIONS`] hyper 1 HTTP/1.1 keep-alive connections per
//!   contender. Each connection's first request creates a session; its
//!   cookie goes with every later request, so every timed request loads the
//!   session, changes it and saves it. Every response is checked: status
//!   200 and the body is the connection's count so far, so a contender that
//!   fails or loses a write stops the run.
//! * Criterion: one iteration is [`BATCH`] requests spread evenly over the
//!   connections, all in flight together (`iter_custom`,
//!   `Throughput::Elements`), so criterion reports requests per second.
//! * After the group, [`ROUNDS`] interleaved rounds of [`ROUND`] requests per
//!   contender, outside criterion, give each contender's best and median
//!   round and the ratios covet / tower-sessions of both; interleaving keeps
//!   the ratios honest when the machine's load changes during the run. Each
//!   timed round is preceded by [`WARMUP`] untimed requests to the same
//!   contender, and the order alternates between rounds ([`rounds::interleave`]):
//!   a contender's first requests after another contender ran are slower
//!   (its connections and the Redis connection's task were idle), and in a
//!   fixed order without warm-up that cost always fell on the same
//!   contenders (covet's Redis round followed the memory ones and came out
//!   about 10 % slower than with the order reversed).
//! * Redis is `COVET_REDIS_URL` (default `redis://127.0.0.1:6379`). Both
//!   stores keep their default keys: covet's `RedisStore` the default
//!   prefix (`__covet_session:` and the id's 64-character hash),
//!   tower-sessions' the bare id. The run knows every session's id from the
//!   cookies (and the stores' own contenders from their setup) and deletes
//!   exactly those keys at the end (`UNLINK`), never by pattern or by
//!   flushing.
//!
//! * Last, the same number of interleaved rounds of the Redis stores alone
//!   (no HTTP, no layer; `session_store/mod.rs` says what each contender
//!   sends), which split a Redis session request's cost into the store's
//!   code, the layout and the client library; warmed up and ordered the same
//!   way ([`STORE_WARMUP`]).
//!
//! `COVET_BENCH_PROFILE=<contender>:<requests>` skips criterion and sends
//! that many requests to one contender (for `perf` or callgrind), then
//! prints its requests per second; the contender may also be one of the
//! Redis stores alone (`covet_store`, `redis_crate_hash`, ...), which then
//! runs that many load + save steps.

mod common;
mod cpu;
mod rounds;
mod session_handlers;
mod session_store;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Conn, Reply, serve};
use covet::session::{
    MemoryStore as CovetMemoryStore, RedisStore as CovetRedisStore, SessionConfig, SessionLayer,
};
use criterion::{Criterion, SamplingMode, Throughput};
use http::{HeaderValue, StatusCode, header};
use session_handlers::internal;
use tokio::runtime::{Builder, Runtime};
use tower_sessions_redis_store::fred::prelude::{
    Client as FredClient, ClientLike, Config as FredConfig,
};

/// Concurrent keep-alive connections per contender, one session each.
const CONNECTIONS: usize = 16;
/// Requests per criterion iteration (a multiple of `CONNECTIONS`).
const BATCH: u64 = 256;
/// Interleaved rounds after the criterion group (even: see
/// [`rounds::interleave`]).
const ROUNDS: usize = 12;
/// Requests per contender and round (a multiple of `CONNECTIONS`).
const ROUND: u64 = 8192;
/// Untimed requests a contender serves just before each of its rounds.
const WARMUP: u64 = 512;
// `rounds` tells a timed round from a warm-up by its size.
const _: () = assert!(WARMUP != ROUND);
/// Load + save steps per store contender and round (a multiple of
/// `session_store::TASKS`).
const STORE_ROUND: u64 = 8192;
/// Untimed steps a store contender runs just before each of its rounds.
const STORE_WARMUP: u64 = 1024;
/// Idle expiry of every session, on both sides.
const IDLE_SECS: u64 = 3600;

async fn tower_014_handler(session: tower_sessions_014::Session) -> Result<String, StatusCode> {
    let n: u64 = session.get("n").await.map_err(internal)?.unwrap_or(0);
    session.insert("n", n + 1).await.map_err(internal)?;
    Ok(n.to_string())
}

fn redis_url() -> String {
    std::env::var("COVET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// One keep-alive connection and the session it carries.
struct Client {
    conn: Conn,
    /// `name=value` of the session cookie, once the server has set one.
    cookie: Option<HeaderValue>,
    /// The body the next response must carry.
    next: u64,
    /// Whether the contender keeps a session (the body then counts up).
    sessions: bool,
    contender: &'static str,
}

impl Client {
    async fn connect(addr: SocketAddr, contender: &'static str, sessions: bool) -> Client {
        Client {
            conn: Conn::connect(addr).await,
            cookie: None,
            next: 0,
            sessions,
            contender,
        }
    }

    async fn send(&mut self) -> Reply {
        self.conn.get("/", self.cookie.as_ref()).await
    }

    /// One request whose answer must be the expected count.
    async fn step(&mut self) {
        let reply = self.send().await;
        self.check(&reply);
    }

    fn check(&mut self, reply: &Reply) {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: status {} (body {:?})",
            self.contender,
            reply.status,
            reply.body
        );
        let got = std::str::from_utf8(&reply.body)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        assert_eq!(
            got,
            Some(self.next),
            "{}: body {:?}, expected {}",
            self.contender,
            reply.body,
            self.next
        );
        if self.sessions {
            self.next += 1;
        }
    }

    /// The first two requests: the first creates the session and must set a
    /// cookie, the second must find the session again.
    async fn open_session(&mut self) {
        let first = self.send().await;
        self.check(&first);
        if self.sessions {
            let set_cookie = first
                .headers
                .get(header::SET_COOKIE)
                .cloned()
                .unwrap_or_else(|| panic!("{}: no Set-Cookie on a new session", self.contender));
            let pair = set_cookie
                .to_str()
                .expect("Set-Cookie is ASCII")
                .split(';')
                .next()
                .expect("cookie pair")
                .trim()
                .to_owned();
            self.cookie = Some(HeaderValue::from_str(&pair).expect("cookie header"));
        }
        self.step().await;
    }

    /// The session id, from the cookie value.
    fn session_id(&self) -> Option<String> {
        let cookie = self.cookie.as_ref()?.to_str().ok()?;
        Some(cookie.split_once('=')?.1.to_owned())
    }
}

struct Contender {
    name: &'static str,
    clients: Vec<Client>,
}

impl Contender {
    async fn new(name: &'static str, app: Router, sessions: bool) -> Contender {
        let addr = serve(app).await;
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let mut c = Client::connect(addr, name, sessions).await;
            c.open_session().await;
            clients.push(c);
        }
        Contender { name, clients }
    }

    /// Sends `requests` requests spread over the connections, all in flight
    /// together; returns the wall time.
    async fn run(&mut self, requests: u64) -> Duration {
        let per_connection = requests / CONNECTIONS as u64;
        let start = Instant::now();
        let tasks: Vec<_> = self
            .clients
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    for _ in 0..per_connection {
                        c.step().await;
                    }
                    c
                })
            })
            .collect();
        for t in tasks {
            self.clients.push(t.await.expect("client task"));
        }
        start.elapsed()
    }
}

struct Setup {
    contenders: Vec<Contender>,
    /// covet's Redis store, to name the keys of its sessions at cleanup.
    covet_store: CovetRedisStore,
    fred: FredClient,
    /// The Redis stores alone, on their own sessions.
    stores: session_store::StoreBench,
}

async fn setup() -> Setup {
    let url = redis_url();
    let idle = Duration::from_secs(IDLE_SECS);
    let covet_config = || SessionConfig::default().with_idle_timeout(idle);
    // The default key prefix, as an app gets it: the keys are as long as
    // in production, and the run deletes its own by their exact names.
    let covet_redis = CovetRedisStore::builder()
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("covet RedisStore at {url}: {e}"));
    let covet_store = covet_redis.clone();

    let fred = FredClient::new(
        FredConfig::from_url(&url).expect("fred config from COVET_REDIS_URL"),
        None,
        None,
        None,
    );
    fred.init()
        .await
        .unwrap_or_else(|e| panic!("fred client at {url}: {e}"));

    let tower_expiry = tower_sessions::Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::seconds(IDLE_SECS as i64),
    );
    let tower_014_expiry = tower_sessions_014::Expiry::OnInactivity(
        tower_sessions_014::cookie::time::Duration::seconds(IDLE_SECS as i64),
    );

    let plain = Router::new().route("/", get(session_handlers::plain));
    let covet_memory = Router::new()
        .route("/", get(session_handlers::covet))
        .layer(SessionLayer::new(CovetMemoryStore::new()).with_config(covet_config()));
    let raw = redis::Client::open(url.as_str())
        .expect("redis URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("redis connection at {url}: {e}"));
    let stores = session_store::StoreBench::new(covet_redis.clone(), fred.clone(), raw, idle).await;
    let covet_redis = Router::new()
        .route("/", get(session_handlers::covet))
        .layer(SessionLayer::new(covet_redis).with_config(covet_config()));
    let tower_memory = Router::new()
        .route("/", get(session_handlers::tower))
        .layer(
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_expiry(tower_expiry),
        );
    let tower_redis = Router::new().route("/", get(tower_014_handler)).layer(
        tower_sessions_014::SessionManagerLayer::new(tower_sessions_redis_store::RedisStore::new(
            fred.clone(),
        ))
        .with_expiry(tower_014_expiry),
    );

    let contenders = vec![
        Contender::new("plain_no_session", plain, false).await,
        Contender::new("covet_memory", covet_memory, true).await,
        Contender::new("tower_sessions_memory", tower_memory, true).await,
        Contender::new("covet_redis", covet_redis, true).await,
        Contender::new("tower_sessions_redis", tower_redis, true).await,
    ];
    Setup {
        contenders,
        covet_store,
        fred,
        stores,
    }
}

/// Interleaved rounds of the Redis stores alone; prints each contender's
/// best and median round and the ratios that split the cost.
fn store_rounds(rt: &Runtime, stores: &mut session_store::StoreBench) {
    let per_task = STORE_ROUND / session_store::TASKS as u64;
    let warm_per_task = (STORE_WARMUP / session_store::TASKS as u64).max(1);
    let n = session_store::NAMES.len();
    let mut all: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); n];
    // CPU nanoseconds over every timed round, of this process and of Redis.
    let mut cpu: Vec<(Option<u64>, Option<u64>)> = vec![(Some(0), Some(0)); n];
    rounds::interleave(ROUNDS, n, |i| {
        rt.block_on(stores.run(i, warm_per_task));
        let s = rt.block_on(stores.run(i, per_task));
        all[i].push(s.rate);
        cpu[i] = (
            cpu::sum(cpu[i].0, s.cpu_self_ns),
            cpu::sum(cpu[i].1, s.cpu_redis_ns),
        );
    });
    let best = |i: usize| rounds::highest(&all[i]);
    let median = |i: usize| rounds::median(&all[i]);
    let steps = STORE_ROUND * ROUNDS as u64;
    let per_step = |ns: Option<u64>| cpu::per_op(ns, steps);
    println!(
        "\nRedis stores alone: {ROUNDS} interleaved rounds of {STORE_ROUND} load + save steps over {} tasks",
        session_store::TASKS
    );
    println!(
        "  {:<24} {:>10} {:>10} {:>14} {:>14}",
        "contender", "best /s", "median", "CPU µs/step", "Redis µs/step"
    );
    for (i, name) in session_store::NAMES.iter().enumerate() {
        println!(
            "  {name:<24} {:>10.0} {:>10.0} {:>14} {:>14}",
            best(i),
            median(i),
            per_step(cpu[i].0),
            per_step(cpu[i].1)
        );
    }
    let rows: Vec<(&str, f64, f64)> = session_store::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, best(i), median(i)))
        .collect();
    common::save_rounds("session_store", &rows);
    println!(
        "  medians: covet / tower-sessions {:.2}x; covet's code (store / its commands) {:.2}x; \
         layout (hash / string, redis crate) {:.2}x; library (redis crate / fred) {:.2}x; \
         tower-sessions' code (store / fred string) {:.2}x",
        median(0) / median(1),
        median(0) / median(2),
        median(2) / median(3),
        median(3) / median(4),
        median(1) / median(4),
    );
}

/// Interleaved rounds outside criterion; prints the best round of each
/// contender and the ratios.
fn rounds(rt: &Runtime, contenders: &mut [Contender]) {
    // CPU nanoseconds over every timed round, of this process (clients and
    // servers) and of Redis: on a busy 2-vCPU guest the rates move with
    // where the scheduler puts the threads, the CPU per request much less.
    let mut cpu: Vec<(Option<u64>, Option<u64>)> = vec![(Some(0), Some(0)); contenders.len()];
    let all = rounds::warmed(ROUNDS, contenders.len(), WARMUP, ROUND, |i, requests| {
        let before = cpu::now();
        let rate = requests as f64 / rt.block_on(contenders[i].run(requests)).as_secs_f64();
        // Only the timed rounds count, not the warm-ups.
        if requests == ROUND {
            let after = cpu::now();
            cpu[i] = (
                cpu::sum(cpu[i].0, cpu::used(before.0, after.0)),
                cpu::sum(cpu[i].1, cpu::used(before.1, after.1)),
            );
        }
        rate
    });
    let best = |i: usize| rounds::highest(&all[i]);
    let median = |i: usize| rounds::median(&all[i]);
    let requests = ROUND * ROUNDS as u64;
    println!(
        "\nInterleaved: {ROUNDS} rounds of {ROUND} requests per contender over {CONNECTIONS} connections"
    );
    println!(
        "  {:<24} {:>10} {:>10} {:>12} {:>12}",
        "contender", "best req/s", "median", "CPU µs/req", "Redis µs/req"
    );
    for (i, ct) in contenders.iter().enumerate() {
        println!(
            "  {:<24} {:>10.0} {:>10.0} {:>12} {:>12}",
            ct.name,
            best(i),
            median(i),
            cpu::per_op(cpu[i].0, requests),
            cpu::per_op(cpu[i].1, requests)
        );
    }
    let rows: Vec<(&str, f64, f64)> = contenders
        .iter()
        .enumerate()
        .map(|(i, ct)| (ct.name, best(i), median(i)))
        .collect();
    common::save_rounds("session_rps", &rows);
    let index = |name: &str| {
        contenders
            .iter()
            .position(|c| c.name == name)
            .expect("contender")
    };
    let (cm, tm) = (index("covet_memory"), index("tower_sessions_memory"));
    let (cr, tr) = (index("covet_redis"), index("tower_sessions_redis"));
    println!(
        "  covet / tower-sessions: memory {:.2}x (best) {:.2}x (median), redis {:.2}x (best) {:.2}x (median)",
        best(cm) / best(tm),
        median(cm) / median(tm),
        best(cr) / best(tr),
        median(cr) / median(tr),
    );
    // CPU of the whole request (process + Redis), tower-sessions' over
    // covet's: above 1 means covet's requests cost less.
    let total = |i: usize| Some(cpu[i].0? + cpu[i].1?);
    let ratio = |c: usize, t: usize| match (total(c), total(t)) {
        (Some(c), Some(t)) if c > 0 => format!("{:.2}x", t as f64 / c as f64),
        _ => "n/a".to_owned(),
    };
    println!(
        "  CPU per request (process + Redis), tower-sessions / covet: memory {}, redis {}",
        ratio(cm, tm),
        ratio(cr, tr)
    );
}

/// Deletes every session the run stored in Redis, by its exact key.
async fn cleanup(setup: &Setup) {
    let client = redis::Client::open(redis_url()).expect("redis URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection for cleanup");
    let ids = |name: &str| -> Vec<String> {
        setup
            .contenders
            .iter()
            .filter(|c| c.name == name)
            .flat_map(|c| c.clients.iter().filter_map(Client::session_id))
            .collect()
    };
    let covet_keys: Vec<String> = ids("covet_redis")
        .iter()
        .filter_map(|id| id.parse::<covet::session::SessionId>().ok())
        .map(|id| setup.covet_store.redis_key(&id))
        .chain(setup.stores.covet_keys())
        .collect();
    let tower_keys: Vec<String> = ids("tower_sessions_redis")
        .into_iter()
        .chain(setup.stores.tower_keys())
        .collect();
    let covet_deleted = unlink(&mut con, &covet_keys).await;
    let tower_deleted = unlink(&mut con, &tower_keys).await;
    println!(
        "\nRedis cleanup: {covet_deleted} of {} covet keys, {tower_deleted} of {} tower-sessions keys",
        covet_keys.len(),
        tower_keys.len()
    );
    let _ = setup.fred.quit().await;
}

/// `UNLINK` of `keys`; how many existed.
async fn unlink(con: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> u64 {
    if keys.is_empty() {
        return 0;
    }
    redis::cmd("UNLINK")
        .arg(keys)
        .query_async(con)
        .await
        .expect("UNLINK")
}

/// `COVET_BENCH_PROFILE=<contender>:<requests>`: one contender alone (an
/// HTTP one, or one of the Redis stores alone: `covet_store`, ...).
fn profile(rt: &Runtime, setup: &mut Setup, spec: &str) {
    let (name, requests) = spec
        .split_once(':')
        .and_then(|(n, r)| Some((n, r.parse::<u64>().ok()?)))
        .expect("COVET_BENCH_PROFILE=<contender>:<requests>");
    if let Some(which) = session_store::NAMES.iter().position(|n| *n == name) {
        let per_task = requests.div_ceil(session_store::TASKS as u64);
        let s = rt.block_on(setup.stores.run(which, per_task));
        println!(
            "{name}: {} steps, {:.0} steps/s",
            per_task * session_store::TASKS as u64,
            s.rate
        );
        return;
    }
    let ct = setup
        .contenders
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no contender {name}"));
    let requests = requests.div_ceil(CONNECTIONS as u64) * CONNECTIONS as u64;
    let d = rt.block_on(ct.run(requests));
    println!(
        "{name}: {requests} requests in {d:?}, {:.0} req/s",
        requests as f64 / d.as_secs_f64()
    );
}

fn main() {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut setup = rt.block_on(setup());
    if let Ok(spec) = std::env::var("COVET_BENCH_PROFILE") {
        profile(&rt, &mut setup, &spec);
        rt.block_on(cleanup(&setup));
        return;
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .sample_size(20)
        .configure_from_args();
    {
        let mut group = c.benchmark_group("session_rps");
        group
            .sampling_mode(SamplingMode::Flat)
            .throughput(Throughput::Elements(BATCH));
        for ct in &mut setup.contenders {
            group.bench_function(ct.name, |b| {
                b.iter_custom(|iters| rt.block_on(ct.run(iters * BATCH)));
            });
        }
        group.finish();
    }
    rounds(&rt, &mut setup.contenders);
    store_rounds(&rt, &mut setup.stores);
    rt.block_on(cleanup(&setup));
    c.final_summary();
}
