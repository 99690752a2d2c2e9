//! The cost of `CsrfLayer` on a form POST: requests per second of the same
//! session route with and without the layer, over real HTTP on loopback,
//! in the same run.
//!
//! ```sh
//! cargo bench --bench csrf
//! ```
//!
//! Both contenders serve `POST /submit` behind `SessionLayer` on a
//! `MemoryStore`: the handler reads the URL-encoded form (`amount`, `note`,
//! `csrf_token`), reads a counter from the session and writes it back. The
//! `csrf` contender adds `CsrfLayer`, which buffers the form body, finds
//! the token and checks it (and the `Origin`) on every request, then hands
//! the body on. Each of [`CONNECTIONS`] keep-alive connections first gets
//! `/form` (its session and a token), then posts; every response is
//! checked (200 and the connection's own count). Interleaved rounds give
//! each contender's best and median round and the ratio; each timed round
//! is preceded by [`WARMUP`] untimed requests to the same contender, and
//! the order alternates between rounds ([`rounds::warmed`]).

mod common;
mod rounds;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Form, Router};
use bytes::Bytes;
use common::{Conn, serve};
use covet::session::{CsrfLayer, CsrfToken, MemoryStore, Session, SessionConfig, SessionLayer};
use criterion::{Criterion, SamplingMode, Throughput};
use http::{HeaderValue, StatusCode, header};
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

#[derive(serde::Deserialize)]
struct Submit {
    amount: u64,
    #[serde(rename = "note")]
    _note: String,
}

async fn form(token: CsrfToken) -> String {
    token.to_string()
}

async fn submit(session: Session, Form(f): Form<Submit>) -> Result<String, covet::session::Error> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(format!("{n} {}", f.amount))
}

fn app(csrf: bool) -> Router {
    let router = Router::new()
        .route("/form", get(form))
        .route("/submit", post(submit));
    let router = if csrf {
        router.layer(CsrfLayer::new())
    } else {
        router
    };
    router.layer(
        SessionLayer::new(MemoryStore::new())
            .with_config(SessionConfig::default().with_secure(false)),
    )
}

struct Client {
    conn: Conn,
    cookie: HeaderValue,
    body: Bytes,
    count: u64,
}

struct Contender {
    name: &'static str,
    clients: Vec<Client>,
}

impl Contender {
    async fn new(name: &'static str, csrf: bool) -> Contender {
        let addr: SocketAddr = serve(app(csrf)).await;
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let mut conn = Conn::connect(addr).await;
            let r = conn.get("/form", None).await;
            assert_eq!(r.status, StatusCode::OK);
            let set = r.headers[header::SET_COOKIE].to_str().expect("ASCII");
            let cookie =
                HeaderValue::from_str(set.split(';').next().expect("a pair")).expect("a cookie");
            let token = String::from_utf8(r.body.to_vec()).expect("a token");
            let body = Bytes::from(format!(
                "amount=10&note=rent%20for%20december&csrf_token={token}"
            ));
            clients.push(Client {
                conn,
                cookie,
                body,
                count: 0,
            });
        }
        Contender { name, clients }
    }

    async fn run(&mut self, requests: u64) -> Duration {
        let per_client = requests / CONNECTIONS as u64;
        let start = Instant::now();
        let tasks: Vec<_> = self
            .clients
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    for _ in 0..per_client {
                        let r = c
                            .conn
                            .post_form("/submit", Some(&c.cookie), c.body.clone())
                            .await;
                        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                        assert_eq!(r.body, format!("{} 10", c.count).as_bytes());
                        c.count += 1;
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

fn main() {
    let rt: Runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut contenders = rt.block_on(async {
        vec![
            Contender::new("form_post", false).await,
            Contender::new("form_post+csrf", true).await,
        ]
    });
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut group = c.benchmark_group("csrf");
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
    let all = rounds::warmed(ROUNDS, contenders.len(), WARMUP, ROUND, |i, requests| {
        requests as f64 / rt.block_on(contenders[i].run(requests)).as_secs_f64()
    });
    println!("\ninterleaved: {ROUNDS} rounds of {ROUND} requests per contender");
    let mut stats = Vec::new();
    for (c, r) in contenders.iter().zip(&all) {
        let (best, median) = (rounds::highest(r), rounds::median(r));
        println!(
            "  {:<16} best {:>8.0} req/s   median {:>8.0} req/s",
            c.name, best, median
        );
        stats.push((best, median));
    }
    println!(
        "  CsrfLayer costs {:.1} % (best) {:.1} % (median) of the requests per second",
        100.0 * (1.0 - stats[1].0 / stats[0].0),
        100.0 * (1.0 - stats[1].1 / stats[0].1)
    );
    c.final_summary();
}
