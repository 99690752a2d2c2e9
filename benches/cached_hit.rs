//! Hit path of `#[covet::cached]` against raw moka, hand-written moka and
//! the `cached` crate, plus a stampede of concurrent misses of one key.
//!
//! Run with `cargo bench --bench cached_hit`; results and how to read them
//! are in `BENCHMARKS.md` at the workspace root.
//!
//! # Method
//!
//! Every contender returns the same value type ([`User`], a `u64` and a
//! 10-byte `String`) for the same id (42), from a cache warmed before timing.
//! Each contender is an `async` closure run by the same two drivers:
//!
//! * `hit_1_thread`: `iter_custom` runs the whole loop of `iters` awaits
//!   inside one `block_on` of a current-thread tokio runtime built once, so
//!   no runtime entry is paid per call. The figure is the time of one call.
//! * `hit_2_threads`: `iter_custom` starts 2 threads, each with its own
//!   current-thread runtime; they meet at a barrier, then each does `iters`
//!   calls on the shared cache. The figure is the slower thread's wall time
//!   divided by `iters`: the time of one call while another thread calls the
//!   same key at the same time (per-thread latency). Equal to the 1-thread
//!   figure means perfect scaling; total throughput is `2 / figure`. On a VM
//!   the figure depends on where the host puts the two vCPUs, so the run
//!   also reports, per benchmark, a core-to-core round trip measured before
//!   each sample and how parallel the two threads really were.
//!
//! `hit_pieces` times parts of our hit path rebuilt from public parts (moka
//! with our key type, with `MemoryBackend`'s configuration, key rendering,
//! `default_cache()`), to see where the time goes.
//!
//! `stampede` times 100 concurrent calls (100 tokio tasks on a 2-worker
//! runtime, joined with `join_all`) of a fn whose body sleeps 1 ms, with a
//! fresh key per iteration so every iteration is a miss, and counts how many
//! times the body ran.
//!
//! For profilers, `COVET_BENCH_PROFILE=<name>:<calls>[:2]` skips criterion
//! and runs one contender or piece (`d_covet_default_cache`,
//! `p4_render_keybuf`, ...) that many times, on 2 threads with `:2`.

use std::any::Any;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use covet::cache::{Cache, KeyBuf, MemoryBackend};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use serde::{Deserialize, Serialize};
use tokio::runtime::{Builder, Runtime};

/// The id every hit benchmark asks for.
const ID: u64 = 42;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn make_user(id: u64) -> User {
    // 10 characters: "user-00042".
    User {
        id,
        name: format!("user-{id:05}"),
    }
}

// ---- contenders -------------------------------------------------------------

// (a) the floor: moka keyed by the id itself.
static RAW_MOKA: LazyLock<moka::future::Cache<u64, User>> =
    LazyLock::new(|| moka::future::Cache::new(10_000));

// The store under `covet::cache::LocalMemo`, bare: quick_cache's sync cache.
static QUICK: LazyLock<quick_cache::sync::Cache<u64, User>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(10_000));

// (g) the typed local memo: quick_cache plus a TTL checked on read and counters.
static LOCAL: LazyLock<covet::cache::LocalMemo<u64, User>> = LazyLock::new(|| {
    covet::cache::LocalMemo::builder()
        .max_entries(10_000)
        .ttl(Duration::from_secs(3600))
        .build()
});

// Reference for (a): moka's synchronous cache.
static SYNC_MOKA: LazyLock<moka::sync::Cache<u64, User>> =
    LazyLock::new(|| moka::sync::Cache::new(10_000));

// (b) what users write today: moka keyed by a formatted `String`.
static STRING_MOKA: LazyLock<moka::future::Cache<String, User>> =
    LazyLock::new(|| moka::future::Cache::new(10_000));

async fn string_moka_get_user(id: u64) -> User {
    let key = format!("user:{id}");
    if let Some(user) = STRING_MOKA.get(&key).await {
        return user;
    }
    let user = make_user(id);
    STRING_MOKA.insert(key, user.clone()).await;
    user
}

// Body executions of each memoized fn (each must run once: the rest are hits).
static RUNS_CACHED: AtomicU64 = AtomicU64::new(0);
static RUNS_CONCURRENT_CACHED: AtomicU64 = AtomicU64::new(0);
static RUNS_COVET_DEFAULT: AtomicU64 = AtomicU64::new(0);
static RUNS_COVET_STATIC: AtomicU64 = AtomicU64::new(0);
static RUNS_COVET_LOCAL: AtomicU64 = AtomicU64::new(0);
static RUNS_COVET_SYNC: AtomicU64 = AtomicU64::new(0);

// (h) ours, `#[cached(local)]`: a typed memo per fn, keyed by the argument.
#[covet::cached(local)]
async fn covet_local_get_user(id: u64) -> User {
    RUNS_COVET_LOCAL.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// (i) ours on a sync fn (implicitly local).
#[covet::cached]
fn covet_sync_get_user(id: u64) -> User {
    RUNS_COVET_SYNC.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// A `String` argument: ours looks it up borrowed; both callers pass an
// owned `String` (cloned per call, in both).
#[covet::cached(local)]
async fn covet_local_by_name(name: String) -> User {
    make_user(name.len() as u64)
}

#[cached::proc_macro::concurrent_cached]
async fn concurrent_cached_by_name(name: String) -> User {
    make_user(name.len() as u64)
}

// Sync memoized Fibonacci: ours and the `cached` crate's sync `#[cached]`.
#[covet::cached(max_entries = 1000)]
fn covet_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        covet_fib(n - 1).wrapping_add(covet_fib(n - 2))
    }
}

#[cached::proc_macro::cached(max_size = 1000)]
fn cached_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        cached_fib(n - 1).wrapping_add(cached_fib(n - 2))
    }
}

// Misses with a body doing nothing: what the miss path itself costs.
#[covet::cached(local, max_entries = 100_000)]
async fn covet_local_miss(n: u64) -> u64 {
    n
}

#[covet::cached(key = "miss:{n}")]
async fn covet_shared_miss(n: u64) -> u64 {
    n
}

#[cached::proc_macro::cached(max_size = 100_000)]
async fn cached_miss(n: u64) -> u64 {
    n
}

// (c) the `cached` crate's `#[cached]` (default store: `UnboundCache` behind
// an `async_lock::RwLock`, keyed by the argument).
#[cached::proc_macro::cached]
async fn cached_get_user(id: u64) -> User {
    RUNS_CACHED.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// (c') the `cached` crate's sharded `#[concurrent_cached]`, for reference.
#[cached::proc_macro::concurrent_cached]
async fn concurrent_cached_get_user(id: u64) -> User {
    RUNS_CONCURRENT_CACHED.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// (d) ours, on the process-wide default cache (set in `main`).
#[covet::cached(key = "user:{id}")]
async fn covet_default_get_user(id: u64) -> User {
    RUNS_COVET_DEFAULT.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// (e) ours, on a cache in a static.
static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .backend(MemoryBackend::new())
        .namespace("bench")
        .build()
        .expect("valid cache configuration")
});

#[covet::cached(key = "user:{id}", cache = CACHE)]
async fn covet_static_get_user(id: u64) -> User {
    RUNS_COVET_STATIC.fetch_add(1, Ordering::Relaxed);
    make_user(id)
}

// (f) ours, typed API on the default cache's handle.
static TYPED: LazyLock<Cache> = LazyLock::new(|| covet::cache::default_cache().clone());

// Pieces of the hit path (see `pieces`).
type FoldHash = foldhash::fast::RandomState;

static STR_MOKA: LazyLock<moka::future::Cache<Arc<str>, User, FoldHash>> = LazyLock::new(|| {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .build_with_hasher(FoldHash::default())
});

/// Like `MemoryBackend`'s entry: the decoded value kept beside the bytes.
struct PieceEntry {
    decoded: OnceLock<Arc<dyn Any + Send + Sync>>,
    ttl: Option<Duration>,
    weight: u32,
}

struct PieceExpiry;

impl moka::Expiry<Arc<str>, Arc<PieceEntry>> for PieceExpiry {
    fn expire_after_create(
        &self,
        _: &Arc<str>,
        v: &Arc<PieceEntry>,
        _: Instant,
    ) -> Option<Duration> {
        v.ttl
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        v: &Arc<PieceEntry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        v.ttl
    }
}

static ENTRY_MOKA: LazyLock<moka::future::Cache<Arc<str>, Arc<PieceEntry>, FoldHash>> =
    LazyLock::new(|| {
        moka::future::Cache::builder()
            .max_capacity(10_000)
            .build_with_hasher(FoldHash::default())
    });

static PIECE_EVICTIONS: AtomicU64 = AtomicU64::new(0);

static BACKEND_MOKA: LazyLock<moka::future::Cache<Arc<str>, Arc<PieceEntry>, FoldHash>> =
    LazyLock::new(|| {
        moka::future::Cache::builder()
            .max_capacity(64 << 20)
            .weigher(|_: &Arc<str>, v: &Arc<PieceEntry>| v.weight)
            .expire_after(PieceExpiry)
            .eviction_listener(|_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    PIECE_EVICTIONS.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(FoldHash::default())
    });

/// Fills every cache with user 42 and checks that each contender returns it.
fn warm(rt: &Runtime) {
    rt.block_on(async {
        let want = make_user(ID);
        RAW_MOKA.insert(ID, want.clone()).await;
        SYNC_MOKA.insert(ID, want.clone());
        QUICK.insert(ID, want.clone());
        LOCAL.insert(ID, want.clone());
        STR_MOKA.insert("bench:user:42".into(), want.clone()).await;
        let decoded = OnceLock::new();
        let _ = decoded.set(Arc::new(want.clone()) as Arc<dyn Any + Send + Sync>);
        let entry = PieceEntry {
            decoded,
            ttl: None,
            weight: 200,
        };
        let entry = Arc::new(entry);
        ENTRY_MOKA
            .insert("bench:user:42".into(), entry.clone())
            .await;
        BACKEND_MOKA.insert("bench:user:42".into(), entry).await;
        // (f) reads the entry (d) stores: the typed API and the macro share keys.
        assert_eq!(covet_default_get_user(ID).await, want);
        for _ in 0..2 {
            assert_eq!(RAW_MOKA.get(&ID).await.as_ref(), Some(&want));
            assert_eq!(SYNC_MOKA.get(&ID).as_ref(), Some(&want));
            assert_eq!(string_moka_get_user(ID).await, want);
            assert_eq!(cached_get_user(ID).await, want);
            assert_eq!(concurrent_cached_get_user(ID).await, want);
            assert_eq!(covet_local_get_user(ID).await, want);
            assert_eq!(covet_sync_get_user(ID), want);
            assert_eq!(covet_default_get_user(ID).await, want);
            assert_eq!(covet_static_get_user(ID).await, want);
            assert_eq!(
                TYPED.get::<User>("user:42").await.ok().flatten(),
                Some(want.clone())
            );
            assert_eq!(STR_MOKA.get("bench:user:42").await.as_ref(), Some(&want));
            for moka in [&*ENTRY_MOKA, &*BACKEND_MOKA] {
                let entry = moka.get("bench:user:42").await.expect("warmed");
                let decoded = entry.decoded.get().expect("decoded");
                assert_eq!(decoded.downcast_ref::<User>(), Some(&want));
            }
        }
    });
}

// ---- drivers ----------------------------------------------------------------

fn current_thread_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `iters` sequential calls inside one `block_on`; the time of the loop only.
fn run_loop<F, T>(rt: &Runtime, iters: u64, op: &F) -> Duration
where
    F: AsyncFn() -> T,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(op().await);
        }
        start.elapsed()
    })
}

/// CPU time (user + system) of the calling thread so far, from
/// `/proc/thread-self/stat` (10 ms ticks); `None` where that file is missing.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// What a 2-thread run measured.
#[derive(Clone, Copy, Default)]
struct TwoThreads {
    /// The slower thread's loop time.
    wall: Duration,
    /// CPU time of both threads, runtime set-up and ping-pong included.
    cpu: Option<Duration>,
    /// Time of one cache-line round trip between the 2 threads, measured
    /// just before the loop.
    round_trip: Duration,
}

/// Round trips in the ping-pong that measures how far apart the 2 threads'
/// cores are (on a VM, the host may move vCPUs between runs).
const PING_PONGS: u32 = 2_000;

/// Thread `me` (0 or 1) passes `ball` back and forth with the other thread
/// [`PING_PONGS`] times; returns the time of one round trip.
fn ping_pong(ball: &AtomicU64, me: u64) -> Duration {
    let start = Instant::now();
    for round in 0..u64::from(PING_PONGS) {
        let mine = round * 2 + me;
        let mut spins = 0u32;
        while ball.load(Ordering::Acquire) != mine {
            spins += 1;
            if spins.is_multiple_of(1024) {
                // The other thread may be waiting for this core.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        ball.store(mine + 1, Ordering::Release);
    }
    start.elapsed() / PING_PONGS
}

/// 2 threads, each doing `iters` calls on its own current-thread runtime,
/// released together.
fn run_two_threads<F, T>(iters: u64, op: &F) -> TwoThreads
where
    F: AsyncFn() -> T + Sync,
{
    let barrier = Barrier::new(2);
    let ball = AtomicU64::new(0);
    std::thread::scope(|s| {
        // Both threads are started before either is joined.
        let handles: Vec<_> = (0..2)
            .map(|me| {
                let (barrier, ball) = (&barrier, &ball);
                s.spawn(move || {
                    let cpu_before = thread_cpu_time();
                    let rt = current_thread_runtime();
                    let round_trip = ping_pong(ball, me);
                    barrier.wait();
                    let wall = run_loop(&rt, iters, op);
                    let cpu = thread_cpu_time()
                        .zip(cpu_before)
                        .map(|(after, before)| after.saturating_sub(before));
                    TwoThreads {
                        wall,
                        cpu,
                        round_trip,
                    }
                })
            })
            .collect();
        let workers: Vec<TwoThreads> = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        TwoThreads {
            wall: workers.iter().map(|w| w.wall).max().unwrap_or_default(),
            cpu: workers.iter().map(|w| w.cpu).sum(),
            round_trip: workers[0].round_trip,
        }
    })
}

/// For each 2-thread benchmark: CPU time of both threads over the summed
/// wall time (near 2: the threads really ran in parallel; near 1: they took
/// turns, because another process was busy or a lock parked them), and the
/// median core-to-core round trip seen before its samples (about 50 ns or
/// about 400 ns on the 2-vCPU VM of `BENCHMARKS.md`: figures are comparable
/// only at the same placement).
static PARALLELISM: Mutex<Vec<(String, f64, Duration)>> = Mutex::new(Vec::new());

/// Something done with each contender: benchmark it, or profile it.
trait Visit {
    fn visit<F, T>(&mut self, name: &str, op: F)
    where
        F: AsyncFn() -> T + Sync;
}

/// The hit contenders, (a) to (f).
fn contenders(v: &mut impl Visit) {
    v.visit("a_moka_u64_key", async || {
        RAW_MOKA.get(&black_box(ID)).await
    });
    v.visit("b_moka_format_string_key", async || {
        string_moka_get_user(black_box(ID)).await
    });
    v.visit("c_cached_crate", async || {
        cached_get_user(black_box(ID)).await
    });
    v.visit("c2_cached_crate_concurrent", async || {
        concurrent_cached_get_user(black_box(ID)).await
    });
    v.visit("d_covet_default_cache", async || {
        covet_default_get_user(black_box(ID)).await
    });
    v.visit("e_covet_static_cache", async || {
        covet_static_get_user(black_box(ID)).await
    });
    v.visit("f_covet_typed_get", async || {
        TYPED.get::<User>(black_box("user:42")).await
    });
    v.visit("g_covet_local_memo", async || LOCAL.get(&black_box(ID)));
    v.visit("h_covet_local_async", async || {
        covet_local_get_user(black_box(ID)).await
    });
    v.visit("i_covet_local_sync", async || {
        covet_sync_get_user(black_box(ID))
    });
}

/// The pieces of our hit path, rebuilt from public parts, to see what each
/// costs on top of (a).
fn pieces(v: &mut impl Visit) {
    // (a) with our key type and hasher: `Arc<str>` keys, foldhash, `&str` lookup.
    v.visit("p1_moka_str_key_foldhash", async || {
        STR_MOKA.get(black_box("bench:user:42")).await
    });
    // p1 storing what `MemoryBackend` stores (an `Arc` of an entry keeping
    // the decoded value as `Arc<dyn Any>`), then the downcast and clone of
    // `Cache::lookup`; moka built with defaults.
    v.visit("p2_arc_entry_downcast_clone", async || {
        let entry = ENTRY_MOKA.get(black_box("bench:user:42")).await?;
        let decoded = entry.decoded.get()?;
        decoded.downcast_ref::<User>().cloned()
    });
    // p2 with `MemoryBackend`'s moka configuration (weigher, per-entry
    // expiry, eviction listener): the hit path without key rendering,
    // default-cache lookup and hit counter.
    v.visit("p3_backend_config_downcast_clone", async || {
        let entry = BACKEND_MOKA.get(black_box("bench:user:42")).await?;
        let decoded = entry.decoded.get()?;
        decoded.downcast_ref::<User>().cloned()
    });
    // The key of (d) as `#[cached]` renders it: `KeyBuf::new` copies the
    // namespace prefix, the literal piece is pushed, the integer is written
    // without `core::fmt`.
    v.visit("p4_render_keybuf", async || {
        use covet::__private::{KeyPart, WriteKeyFast as _};
        let mut key = KeyBuf::new(covet::cache::default_cache());
        key.push_str("user:");
        let id = black_box(ID);
        let part = &KeyPart(&id);
        part.write_key(&mut key);
        black_box(key.as_str().len())
    });
    // The same key through `core::fmt` (`write!`), for comparison.
    v.visit("p4b_render_keybuf_fmt", async || {
        let mut key = KeyBuf::new(covet::cache::default_cache());
        let _ = write!(key, "user:{}", black_box(ID));
        black_box(key.as_str().len())
    });
    // `default_cache()` alone.
    v.visit("p5_default_cache", async || {
        black_box(covet::cache::default_cache().namespace().len())
    });
    // (a) on moka's synchronous cache, for reference: the same store without
    // the async read path (interrupted-op retry, async housekeeping).
    v.visit("p6_moka_sync_u64_key", async || {
        SYNC_MOKA.get(&black_box(ID))
    });
    // The store of (g) alone: quick_cache's sync cache, same key and value.
    v.visit("p7_quick_cache_u64_key", async || QUICK.get(&black_box(ID)));
    // A `String` argument (a 24-byte name, cloned by the caller each call).
    let name = "customer-4242-eu-west-01".to_owned();
    v.visit("p8_covet_local_string_arg", async || {
        covet_local_by_name(black_box(&name).clone()).await
    });
    v.visit("p9_concurrent_cached_string_arg", async || {
        concurrent_cached_by_name(black_box(&name).clone()).await
    });
}

struct Bench<'a, 'c> {
    group: BenchmarkGroup<'c, WallTime>,
    group_name: &'static str,
    rt: &'a Runtime,
    two_threads: bool,
}

impl Visit for Bench<'_, '_> {
    fn visit<F, T>(&mut self, name: &str, op: F)
    where
        F: AsyncFn() -> T + Sync,
    {
        let (rt, two_threads) = (self.rt, self.two_threads);
        let (mut wall, mut cpu) = (Duration::ZERO, Some(Duration::ZERO));
        let mut round_trips = Vec::new();
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                if two_threads {
                    let run = run_two_threads(iters, &op);
                    wall += run.wall;
                    cpu = cpu.zip(run.cpu).map(|(sum, c)| sum + c);
                    round_trips.push(run.round_trip);
                    run.wall
                } else {
                    run_loop(rt, iters, &op)
                }
            })
        });
        // Too short a run says nothing at 10 ms ticks (e.g. with `--test`).
        if let Some(cpu) = cpu.filter(|_| two_threads && wall >= Duration::from_millis(500)) {
            let name = format!("{}/{name}", self.group_name);
            let ratio = cpu.as_secs_f64() / wall.as_secs_f64();
            round_trips.sort();
            let round_trip = round_trips[round_trips.len() / 2];
            PARALLELISM
                .lock()
                .expect("not poisoned")
                .push((name, ratio, round_trip));
        }
    }
}

fn hits(c: &mut Criterion, rt: &Runtime) {
    for (group, two_threads) in [("hit_1_thread", false), ("hit_2_threads", true)] {
        let mut bench = Bench {
            group: c.benchmark_group(group),
            group_name: group,
            rt,
            two_threads,
        };
        contenders(&mut bench);
        bench.group.finish();
    }
    let mut bench = Bench {
        group: c.benchmark_group("hit_pieces"),
        group_name: "hit_pieces",
        rt,
        two_threads: false,
    };
    pieces(&mut bench);
    bench.group.finish();
}

/// `COVET_BENCH_PROFILE=<name>:<calls>[:2]` runs one contender or piece that
/// many times (on each of 2 threads with `:2`), outside criterion, for
/// `perf` or `valgrind --tool=callgrind`.
struct Profile<'a> {
    rt: &'a Runtime,
    name: String,
    calls: u64,
    two_threads: bool,
    found: bool,
}

impl Visit for Profile<'_> {
    fn visit<F, T>(&mut self, name: &str, op: F)
    where
        F: AsyncFn() -> T + Sync,
    {
        if name == self.name {
            self.found = true;
            let elapsed = if self.two_threads {
                run_two_threads(self.calls, &op).wall
            } else {
                run_loop(self.rt, self.calls, &op)
            };
            println!(
                "{name}: {} calls, {:.1} ns/call",
                self.calls,
                elapsed.as_nanos() as f64 / self.calls.max(1) as f64
            );
        }
    }
}

fn profile(rt: &Runtime, spec: &str) {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default();
    let calls = parts.next().unwrap_or("1000000");
    let mut p = Profile {
        rt,
        name: name.to_owned(),
        calls: calls
            .parse()
            .expect("COVET_BENCH_PROFILE=<name>:<calls>[:2]"),
        two_threads: parts.next() == Some("2"),
        found: false,
    };
    contenders(&mut p);
    pieces(&mut p);
    assert!(p.found, "no contender or piece named {name:?}");
}

// ---- stampede ---------------------------------------------------------------

/// Concurrent callers per iteration.
const CALLERS: usize = 100;

/// Fresh key per iteration, shared by all contenders.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1_000_000);

static SLOW_RUNS_COVET: AtomicU64 = AtomicU64::new(0);
static SLOW_RUNS_CACHED: AtomicU64 = AtomicU64::new(0);
static SLOW_RUNS_CACHED_BY_KEY: AtomicU64 = AtomicU64::new(0);

async fn slow_body(n: u64, runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1)).await;
    n
}

#[covet::cached(key = "slow:{n}")]
async fn slow_covet(n: u64) -> u64 {
    slow_body(n, &SLOW_RUNS_COVET).await
}

// Default `#[cached]`: no synchronization of concurrent misses.
#[cached::proc_macro::cached]
async fn slow_cached(n: u64) -> u64 {
    slow_body(n, &SLOW_RUNS_CACHED).await
}

// `#[cached]` with its per-key write lock, which does coalesce.
#[cached::proc_macro::cached(sync_writes = "by_key")]
async fn slow_cached_by_key(n: u64) -> u64 {
    slow_body(n, &SLOW_RUNS_CACHED_BY_KEY).await
}

/// Body executions per stampede, per contender, for the report.
struct Tally {
    stampedes: AtomicU64,
    runs: AtomicU64,
}

static TALLIES: [(&str, Tally); 3] = [
    ("covet", Tally::new()),
    ("cached", Tally::new()),
    ("cached_by_key", Tally::new()),
];

impl Tally {
    const fn new() -> Tally {
        Tally {
            stampedes: AtomicU64::new(0),
            runs: AtomicU64::new(0),
        }
    }
}

fn bench_stampede<Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    tally: &Tally,
    runs: &AtomicU64,
    exactly_once: bool,
    call: fn(u64) -> Fut,
) where
    Fut: Future<Output = u64> + Send + 'static,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let before = runs.load(Ordering::Relaxed);
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
                    let tasks = (0..CALLERS).map(|_| tokio::spawn(call(black_box(key))));
                    for r in futures_util::future::join_all(tasks).await {
                        assert_eq!(r.expect("task panicked"), key);
                    }
                }
                start.elapsed()
            });
            let ran = runs.load(Ordering::Relaxed) - before;
            if exactly_once {
                assert_eq!(ran, iters, "{name}: the body must run once per stampede");
            }
            tally.stampedes.fetch_add(iters, Ordering::Relaxed);
            tally.runs.fetch_add(ran, Ordering::Relaxed);
            elapsed
        })
    });
}

/// `fib`: fib(90) from an empty memo (91 misses and 88 hits), ours against
/// the `cached` crate's sync `#[cached]`. `miss`: a call with a new key each
/// time and a body doing nothing.
fn fib_and_misses(c: &mut Criterion, rt: &Runtime) {
    use cached::Cached as _;
    let mut group = c.benchmark_group("fib");
    group.bench_function("covet_sync", |b| {
        b.iter(|| {
            let _ = covet_fib_clear();
            black_box(covet_fib(black_box(90)))
        })
    });
    group.bench_function("cached_crate_sync", |b| {
        b.iter(|| {
            CACHED_FIB.write().cache_clear();
            black_box(cached_fib(black_box(90)))
        })
    });
    // Where ours goes: the clear alone, and fib(90) all hits.
    group.bench_function("covet_clear_only", |b| {
        b.iter(|| black_box(covet_fib_clear()))
    });
    group.bench_function("covet_sync_warm", |b| {
        b.iter(|| black_box(covet_fib(black_box(90))))
    });
    group.finish();
    let mut group = c.benchmark_group("miss");
    let next = AtomicU64::new(1 << 32);
    group.bench_function("covet_local", |b| {
        b.iter(|| rt.block_on(covet_local_miss(next.fetch_add(1, Ordering::Relaxed))))
    });
    group.bench_function("covet_shared", |b| {
        b.iter(|| rt.block_on(covet_shared_miss(next.fetch_add(1, Ordering::Relaxed))))
    });
    group.bench_function("cached_crate", |b| {
        b.iter(|| rt.block_on(cached_miss(next.fetch_add(1, Ordering::Relaxed))))
    });
    group.finish();
}

fn stampede(c: &mut Criterion) {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("stampede");
    bench_stampede(
        &mut group,
        &rt,
        "covet",
        &TALLIES[0].1,
        &SLOW_RUNS_COVET,
        true,
        slow_covet,
    );
    bench_stampede(
        &mut group,
        &rt,
        "cached_crate",
        &TALLIES[1].1,
        &SLOW_RUNS_CACHED,
        false,
        slow_cached,
    );
    bench_stampede(
        &mut group,
        &rt,
        "cached_crate_sync_writes_by_key",
        &TALLIES[2].1,
        &SLOW_RUNS_CACHED_BY_KEY,
        false,
        slow_cached_by_key,
    );
    group.finish();
}

// ---- main -------------------------------------------------------------------

fn report() {
    let once = [
        ("c_cached_crate", &RUNS_CACHED),
        ("c2_cached_crate_concurrent", &RUNS_CONCURRENT_CACHED),
        ("d_covet_default_cache", &RUNS_COVET_DEFAULT),
        ("e_covet_static_cache", &RUNS_COVET_STATIC),
        ("h_covet_local_async", &RUNS_COVET_LOCAL),
        ("i_covet_local_sync", &RUNS_COVET_SYNC),
    ];
    for (name, runs) in once {
        let runs = runs.load(Ordering::Relaxed);
        assert_eq!(
            runs, 1,
            "{name}: the body ran {runs} times; every timed call must hit"
        );
    }
    println!("hit benchmarks: every memoized body ran exactly once (all timed calls were hits)");
    for (name, ratio, round_trip) in PARALLELISM.lock().expect("not poisoned").iter() {
        println!(
            "{name}: CPU time / wall time of the 2 threads = {ratio:.2} (2.00 = fully parallel), \
             core-to-core round trip {round_trip:.0?} (median)"
        );
    }
    for (name, tally) in &TALLIES {
        let stampedes = tally.stampedes.load(Ordering::Relaxed);
        let runs = tally.runs.load(Ordering::Relaxed);
        if stampedes > 0 {
            println!(
                "stampede/{name}: body ran {:.2} times per {CALLERS} concurrent misses \
                 ({runs} runs in {stampedes} stampedes)",
                runs as f64 / stampedes as f64
            );
        }
    }
}

fn main() {
    covet::cache::set_default(
        Cache::builder()
            .backend(MemoryBackend::new())
            .namespace("bench")
            .build()
            .expect("valid cache configuration"),
    );
    let rt = current_thread_runtime();
    warm(&rt);
    if let Ok(spec) = std::env::var("COVET_BENCH_PROFILE") {
        profile(&rt, &spec);
        return;
    }

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    hits(&mut c, &rt);
    fib_and_misses(&mut c, &rt);
    stampede(&mut c);
    report();
    c.final_summary();
}
