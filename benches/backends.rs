//! Every cache backend side by side in one run: GET and SET throughput with
//! 64 tasks and 1 KB values; Memcached against a raw meta-protocol client
//! on the same server; and the SQL backends' get/set latency with 10^4 and
//! 10^6 rows in the table.
//!
//! Run with `cargo bench --bench backends --features memcached,redis,sql-postgres,sql-mysql,sql-sqlite`;
//! results and how to read them are in `BENCHMARKS.md` ("Backends side by
//! side"). The servers are the `COVET_*_URL` ones (this machine's defaults
//! otherwise); a server that does not answer is left out of the table.
//! `COVET_BENCH_ROUND_MS`, `COVET_BENCH_ROUNDS` and `COVET_BENCH_ROWS`
//! (default `10000,1000000`) change the run.

mod load;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use covet::cache::{CacheBackend, MemcachedBackend, MemoryBackend, RedisBackend, SqlBackend};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::runtime::Runtime;

use load::{TASKS, throughput};

const VALUE_LEN: usize = 1000;
const KEYS: u64 = 1000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Half a second of warm-up, then the median of the rounds.
fn median<F, Fut>(rt: &Runtime, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let round = Duration::from_millis(env_u64("COVET_BENCH_ROUND_MS", 2000));
    let rounds = env_u64("COVET_BENCH_ROUNDS", 3).max(1) as usize;
    throughput(rt, Duration::from_millis(500), op.clone());
    let mut figures: Vec<f64> = (0..rounds)
        .map(|_| throughput(rt, round, op.clone()).1)
        .collect();
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

fn key(ns: &str, t: usize, i: u64) -> String {
    format!("{ns}:k{}", (t as u64 * 7919 + i) % KEYS)
}

/// GET and SET throughput of one backend: `(set, get)` ops/s.
fn measure(rt: &Runtime, backend: Arc<dyn CacheBackend>) -> (f64, f64) {
    let ns = format!("bench{}", std::process::id());
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let (b, v, n) = (backend.clone(), value.clone(), ns.clone());
    let set = median(rt, move |t, i| {
        let (b, v, k) = (b.clone(), v.clone(), key(&n, t, i));
        async move {
            b.set(&k, v, Some(Duration::from_secs(600)))
                .await
                .expect("set");
        }
    });
    let (b, n) = (backend.clone(), ns.clone());
    let get = median(rt, move |t, i| {
        let (b, k) = (b.clone(), key(&n, t, i));
        async move {
            let got = b.get(&k).await.expect("get").expect("a hit");
            assert_eq!(got.len(), VALUE_LEN);
        }
    });
    // Memcached cannot clear by pattern; its namespace generation moves.
    let _ = rt.block_on(backend.clear(&format!("{ns}:")));
    (set, get)
}

/// A raw meta-protocol client: one connection per task, plain keys, no
/// pool, hashing, breaker, timeout or generation: `(set, get)` ops/s.
fn memcached_raw(rt: &Runtime, addr: &str) -> (f64, f64) {
    let conns: Vec<Arc<tokio::sync::Mutex<BufStream<tokio::net::TcpStream>>>> =
        rt.block_on(async {
            let mut out = Vec::new();
            for _ in 0..TASKS {
                let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                out.push(Arc::new(tokio::sync::Mutex::new(BufStream::new(s))));
            }
            out
        });
    let value = vec![b'x'; VALUE_LEN];
    let c = conns.clone();
    let set = median(rt, move |t, i| {
        let (conn, v) = (c[t].clone(), value.clone());
        async move {
            let mut conn = conn.lock().await;
            let k = key("raw", t, i);
            conn.write_all(format!("ms {k} {} T600\r\n", v.len()).as_bytes())
                .await
                .expect("write");
            conn.write_all(&v).await.expect("write");
            conn.write_all(b"\r\n").await.expect("write");
            conn.flush().await.expect("flush");
            let mut line = String::new();
            conn.read_line(&mut line).await.expect("read");
            assert!(line.starts_with("HD"), "{line}");
        }
    });
    let c = conns;
    let get = median(rt, move |t, i| {
        let conn = c[t].clone();
        async move {
            let mut conn = conn.lock().await;
            let k = key("raw", t, i);
            conn.write_all(format!("mg {k} v\r\n").as_bytes())
                .await
                .expect("write");
            conn.flush().await.expect("flush");
            let mut line = String::new();
            conn.read_line(&mut line).await.expect("read");
            let size: usize = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.trim().parse().ok())
                .expect("VA");
            let mut data = vec![0u8; size + 2];
            conn.read_exact(&mut data).await.expect("value");
        }
    });
    (set, get)
}

/// Median latency of `n` sequential calls of `op`, in microseconds.
fn latency<F, Fut>(rt: &Runtime, n: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let mut times: Vec<f64> = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let start = Instant::now();
            op(i).await;
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        times[n / 2]
    })
}

/// Fills `table` with `rows` rows of 1000-byte values (`row:<n>`) by one
/// statement, then measures get and set latency on random rows.
fn sql_rows(rt: &Runtime, name: &str, url: &str, table: &str, fill: &str, rows: u64) {
    let backend = rt
        .block_on(
            SqlBackend::builder()
                .table(table)
                .sweep_interval(None)
                .connect(url),
        )
        .expect("connect");
    let start = Instant::now();
    rt.block_on(async {
        on_pool(backend.pool(), &format!("DELETE FROM {table}")).await;
        on_pool(
            backend.pool(),
            &fill
                .replace("{table}", table)
                .replace("{rows}", &rows.to_string()),
        )
        .await;
    });
    let filled = start.elapsed();
    let b = backend.clone();
    let get = latency(rt, 2000, |i| {
        let b = b.clone();
        async move {
            let k = format!("row:{}", (i * 104_729) % rows);
            assert!(b.get(&k).await.expect("get").is_some(), "{k}");
        }
    });
    let value = Bytes::from(vec![b'y'; VALUE_LEN]);
    let set = latency(rt, 2000, |i| {
        let (b, v) = (b.clone(), value.clone());
        async move {
            let k = format!("row:{}", (i * 7_919) % rows);
            b.set(&k, v, Some(Duration::from_secs(600)))
                .await
                .expect("set");
        }
    });
    println!(
        "{name:<12} {rows:>9} rows   get p50 {get:>7.1} µs   set p50 {set:>7.1} µs   (filled in {:.1} s)",
        filled.as_secs_f64()
    );
    rt.block_on(async {
        for t in [
            format!("{table}_tags"),
            format!("{table}_leases"),
            table.to_owned(),
        ] {
            on_pool(backend.pool(), &format!("DROP TABLE {t}")).await;
        }
    });
}

async fn on_pool(pool: &covet::cache::SqlPool, statement: &str) {
    match pool {
        covet::cache::SqlPool::Postgres(p) => {
            sqlx::query(statement).execute(p).await.expect(statement);
        }
        covet::cache::SqlPool::Mysql(p) => {
            sqlx::query(statement).execute(p).await.expect(statement);
        }
        covet::cache::SqlPool::Sqlite(p) => {
            sqlx::query(statement).execute(p).await.expect(statement);
        }
        _ => unreachable!("all three databases are enabled"),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let memcached_url = url("COVET_MEMCACHED_URL", "memcache://127.0.0.1:11211");
    let backends: Vec<(&str, Option<Arc<dyn CacheBackend>>)> = rt.block_on(async {
        vec![
            (
                "memory (moka)",
                Some(Arc::new(MemoryBackend::new()) as Arc<dyn CacheBackend>),
            ),
            (
                "Redis",
                RedisBackend::connect(&url("COVET_REDIS_URL", "redis://127.0.0.1:6379"))
                    .await
                    .ok()
                    .map(|b| Arc::new(b) as _),
            ),
            (
                "Memcached",
                MemcachedBackend::connect(&memcached_url)
                    .await
                    .ok()
                    .map(|b| Arc::new(b) as _),
            ),
            (
                "PostgreSQL",
                SqlBackend::builder()
                    .table("covet_bench_cache")
                    .max_connections(16)
                    .connect(&url(
                        "COVET_POSTGRES_URL",
                        "postgres://postgres@127.0.0.1:5432/test",
                    ))
                    .await
                    .ok()
                    .map(|b| Arc::new(b) as _),
            ),
            (
                "MariaDB",
                SqlBackend::builder()
                    .table("covet_bench_cache")
                    .max_connections(16)
                    .connect(&url("COVET_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"))
                    .await
                    .ok()
                    .map(|b| Arc::new(b) as _),
            ),
            (
                "SQLite (file, WAL)",
                SqlBackend::builder()
                    .max_connections(4)
                    .connect(&sqlite)
                    .await
                    .ok()
                    .map(|b| Arc::new(b) as _),
            ),
        ]
    });
    let throughput_section = std::env::var_os("COVET_BENCH_SKIP_THROUGHPUT").is_none();
    println!("## 64 tasks, 1000-byte values, {KEYS} keys (median ops/s)\n");
    println!("| backend | SET | GET |");
    println!("| --- | ---: | ---: |");
    for (name, backend) in backends.into_iter().filter(|_| throughput_section) {
        match backend {
            Some(b) => {
                let (set, get) = measure(&rt, b);
                println!("| {name} | {set:.0} | {get:.0} |");
            }
            None => println!("| {name} | not reachable | |"),
        }
    }
    let addr = memcached_url.trim_start_matches("memcache://").to_owned();
    if throughput_section {
        let (set, get) = memcached_raw(&rt, &addr);
        println!(
            "| raw meta-protocol client, 64 connections (Memcached baseline) | {set:.0} | {get:.0} |"
        );
    }

    println!("\n## SQL get/set latency by table size (1 task, p50 of 2000)\n");
    let rows: Vec<u64> = std::env::var("COVET_BENCH_ROWS")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let pg_fill = "INSERT INTO {table} (key_id, cache_key, value, expires_at) \
        SELECT convert_to('row:' || n, 'UTF8'), convert_to('row:' || n, 'UTF8'), \
        convert_to(repeat('v', 1000), 'UTF8'), NULL FROM generate_series(0, {rows} - 1) AS n";
    // MariaDB caps recursive CTEs (`max_recursive_iterations`): count
    // with six tables of digits instead.
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let my_fill = format!(
        "INSERT INTO {{table}} (key_id, cache_key, value, expires_at) \
         SELECT CONCAT('row:', n), CONCAT('row:', n), REPEAT('v', 1000), NULL FROM \
         (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n \
          FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f, {digits} g) s \
         WHERE n < {{rows}}"
    );
    let my_fill = my_fill.as_str();
    let lite_fill = "INSERT INTO {table} (key_id, cache_key, value, expires_at) \
        WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < {rows}) \
        SELECT CAST('row:' || n AS BLOB), CAST('row:' || n AS BLOB), CAST(printf('%.1000c', 'v') AS BLOB), NULL FROM seq";
    for r in rows {
        sql_rows(
            &rt,
            "PostgreSQL",
            &url(
                "COVET_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
            "covet_bench_rows",
            pg_fill,
            r,
        );
        sql_rows(
            &rt,
            "MariaDB",
            &url("COVET_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
            "covet_bench_rows",
            my_fill,
            r,
        );
        sql_rows(&rt, "SQLite", &sqlite, "covet_bench_rows", lite_fill, r);
    }
}
