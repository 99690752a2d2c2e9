//! A session load + save through the layer in process, without sockets:
//! covet's `SessionLayer` on `MemoryStore` against tower-sessions'
//! `SessionManagerLayer` on its `MemoryStore`, and the same router without
//! sessions, in the same run.
//!
//! ```sh
//! cargo bench --bench session_layer --features axum
//! ```
//!
//! Each call builds a `GET /` with the session cookie, runs the router
//! with `oneshot` and reads the whole body; the handler reads a counter
//! from the session and stores it plus one, as in `benches/sessions.rs`.
//! Every contender's body is checked to count up before timing, so a
//! session that is not found again stops the run. One thread: what is left
//! is the layer's and the store's own CPU, without the kernel's loopback
//! TCP and the scheduler, which dominate the HTTP figures.
//!
//! After criterion's group, [`ROUNDS`] interleaved rounds of [`CALLS`]
//! calls per contender print each contender's best and median time per
//! call and covet's ratio to tower-sessions. Each round is preceded by
//! [`WARMUP`] untimed calls to the same contender, and the order
//! alternates between rounds, as in `benches/sessions.rs`.
//!
//! `COVET_BENCH_PROFILE=<contender>:<calls>` runs one contender alone
//! outside criterion, for profilers.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;

mod rounds;
mod session_handlers;
use covet::session::{MemoryStore, SessionConfig, SessionLayer};
use criterion::Criterion;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use tokio::runtime::{Builder, Runtime};
use tower::ServiceExt;

/// Interleaved rounds after criterion's group (even: see
/// [`rounds::interleave`]).
const ROUNDS: usize = 8;
/// Calls per contender and round.
const CALLS: u32 = 20_000;
/// Untimed calls a contender makes just before each of its rounds.
const WARMUP: u32 = 2_000;
/// Idle expiry of every session, on both sides.
const IDLE_SECS: u64 = 3600;

/// One contender: its router and the cookie of its one session.
struct Contender {
    name: &'static str,
    app: Router,
    cookie: Option<HeaderValue>,
    sessions: bool,
    next: u64,
}

impl Contender {
    async fn call(&mut self) -> (StatusCode, Option<HeaderValue>, u64) {
        let mut req = Request::get("/")
            .header(header::HOST, "app.example")
            .header(
                header::USER_AGENT,
                "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
            );
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c.clone());
        }
        let req = req.body(Body::empty()).expect("request");
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let set_cookie = res.headers().get(header::SET_COOKIE).cloned();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let n = std::str::from_utf8(&body)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: body {body:?}", self.name));
        (status, set_cookie, n)
    }

    /// One checked call: the body is the count the session must hold.
    async fn step(&mut self) {
        let (status, _, n) = self.call().await;
        assert_eq!(status, StatusCode::OK, "{}", self.name);
        assert_eq!(
            n, self.next,
            "{}: the session was not found again",
            self.name
        );
        if self.sessions {
            self.next += 1;
        }
    }

    async fn new(name: &'static str, app: Router, sessions: bool) -> Contender {
        let mut c = Contender {
            name,
            app,
            cookie: None,
            sessions,
            next: 0,
        };
        let (status, set_cookie, n) = c.call().await;
        assert_eq!((status, n), (StatusCode::OK, 0), "{name}");
        if sessions {
            let set_cookie = set_cookie.unwrap_or_else(|| panic!("{name}: no Set-Cookie"));
            let pair = set_cookie
                .to_str()
                .expect("ASCII")
                .split(';')
                .next()
                .expect("pair")
                .trim()
                .to_owned();
            c.cookie = Some(HeaderValue::from_str(&pair).expect("cookie"));
            c.next = 1;
        }
        c.step().await;
        c
    }

    async fn run(&mut self, calls: u32) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            self.step().await;
        }
        start.elapsed()
    }
}

async fn contenders() -> Vec<Contender> {
    let config = SessionConfig::default().with_idle_timeout(Duration::from_secs(IDLE_SECS));
    let covet = Router::new()
        .route("/", get(session_handlers::covet))
        .layer(SessionLayer::new(MemoryStore::new()).with_config(config));
    let tower = Router::new()
        .route("/", get(session_handlers::tower))
        .layer(
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_expiry(tower_sessions::Expiry::OnInactivity(
                    tower_sessions::cookie::time::Duration::seconds(IDLE_SECS as i64),
                )),
        );
    let plain = Router::new().route("/", get(session_handlers::plain));
    vec![
        Contender::new("plain_no_session", plain, false).await,
        Contender::new("covet_memory", covet, true).await,
        Contender::new("tower_sessions_memory", tower, true).await,
    ]
}

fn rounds(rt: &Runtime, contenders: &mut [Contender]) {
    let all = rounds::warmed(ROUNDS, contenders.len(), WARMUP, CALLS, |i, calls| {
        rt.block_on(contenders[i].run(calls)).as_secs_f64() * 1e9 / f64::from(calls)
    });
    println!("\nInterleaved: {ROUNDS} rounds of {CALLS} calls per contender, one thread");
    println!(
        "  {:<24} {:>10} {:>10}",
        "contender", "best ns", "median ns"
    );
    let mut medians = Vec::new();
    for (i, c) in contenders.iter().enumerate() {
        let best = all[i].iter().copied().fold(f64::INFINITY, f64::min);
        let median = rounds::median(&all[i]);
        println!("  {:<24} {:>10.0} {:>10.0}", c.name, best, median);
        medians.push((c.name, median));
    }
    let of = |name: &str| {
        medians
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .expect("contender")
    };
    let plain = of("plain_no_session");
    let (covet, tower) = (of("covet_memory"), of("tower_sessions_memory"));
    println!(
        "  medians: covet / tower-sessions {:.2}x time; over the router alone: covet {:.0} ns, tower-sessions {:.0} ns ({:.2}x)",
        covet / tower,
        covet - plain,
        tower - plain,
        (covet - plain) / (tower - plain),
    );
}

fn main() {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut contenders = rt.block_on(contenders());
    if let Ok(spec) = std::env::var("COVET_BENCH_PROFILE") {
        let (name, calls) = spec
            .split_once(':')
            .and_then(|(n, c)| Some((n, c.parse::<u32>().ok()?)))
            .expect("COVET_BENCH_PROFILE=<contender>:<calls>");
        let c = contenders
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no contender {name}"));
        let d = rt.block_on(c.run(calls));
        println!("{name}: {calls} calls in {d:?}");
        return;
    }
    let mut crit = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut group = crit.benchmark_group("session_layer");
        for c in &mut contenders {
            group.bench_function(c.name, |b| {
                b.iter_custom(|iters| {
                    let calls = u32::try_from(iters).unwrap_or(u32::MAX);
                    rt.block_on(c.run(calls))
                });
            });
        }
        group.finish();
    }
    rounds(&rt, &mut contenders);
    crit.final_summary();
}
