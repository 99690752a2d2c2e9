//! Two real OS processes, each with its own coherent `Tiered` cache over the
//! same Redis and namespace: a write in one drops the other's L1 copy.
//!
//! The test binary runs itself a second time (`current_exe`) with
//! `COVET_TIERED_CHILD` set, limited to the `child_process` test; that test
//! does nothing in an ordinary run. The two talk through the child's
//! stdout (its progress lines) and its stdin (the parent's go-ahead).
#![cfg(feature = "redis")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheBackend, MemoryBackend, RedisBackend, RedisCoherence, Tiered};
use covet_test::{Server, require, unique_namespace};

const CHILD_ENV: &str = "COVET_TIERED_CHILD";

async fn tiered_cache(url: &str, namespace: &str) -> (Cache, Tiered<MemoryBackend, RedisBackend>) {
    let redis = RedisBackend::connect(url)
        .await
        .expect("connecting to Redis");
    let tiered = Tiered::builder(MemoryBackend::new(), redis)
        .coherence(
            RedisCoherence::new(url)
                .unwrap()
                .channel_prefix(format!("covet:invalidate-test:{namespace}:")),
        )
        .connect()
        .await
        .expect("subscribing");
    let cache = Cache::builder()
        .backend(tiered.clone())
        .namespace(namespace)
        .build()
        .unwrap();
    (cache, tiered)
}

/// The second process. Protocol, one line each way per step:
/// reads `k` (A's "v1") into its L1 and prints `READY`; waits until its L1
/// copy is replaced by A's "v2" and prints `SAW v2 <micros>`; on `GO` from
/// stdin writes "v3" and prints `WROTE v3`.
#[test]
fn child_process() {
    let Ok(namespace) = std::env::var(CHILD_ENV) else {
        return;
    };
    let url = Server::Redis.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (cache, tiered) = rt.block_on(tiered_cache(&url, &namespace));
    let key = format!("{namespace}:k");
    rt.block_on(async {
        assert_eq!(
            cache.get::<String>("k").await.unwrap().as_deref(),
            Some("v1")
        );
        assert!(tiered.l1().exists(&key).await.unwrap(), "copied into L1");
    });
    println!("CHILD READY");
    let waited = Instant::now();
    let saw = rt.block_on(async {
        while waited.elapsed() < Duration::from_secs(5) {
            if cache.get::<String>("k").await.unwrap().as_deref() == Some("v2") {
                return true;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        false
    });
    assert!(saw, "the other process's write reached this process");
    println!("CHILD SAW v2 {}", waited.elapsed().as_micros());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "GO");
    rt.block_on(async {
        cache.set("k", &"v3".to_string(), None).await.unwrap();
    });
    println!("CHILD WROTE v3");
}

#[test]
fn a_write_in_one_process_invalidates_the_other_process() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let namespace = unique_namespace("tiered-procs");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (cache, tiered) = rt.block_on(tiered_cache(&url, &namespace));
    rt.block_on(async {
        cache.set("k", &"v1".to_string(), None).await.unwrap();
    });

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &namespace)
        .env(Server::Redis.env_var(), &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the test binary again");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print `test child_process ... ` on the same line
            if let Some(at) = line.find("CHILD ")
                && tx.send(line[at..].to_owned()).is_err()
            {
                break;
            }
        }
    });
    let next = |what: &str| -> String {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the child process did not say {what}"));
        assert!(line.starts_with(what), "expected {what}, got {line}");
        line
    };

    next("CHILD READY");
    rt.block_on(async {
        cache.set("k", &"v2".to_string(), None).await.unwrap();
    });
    let saw = next("CHILD SAW v2");
    let micros: u64 = saw.rsplit(' ').next().unwrap().parse().unwrap();
    eprintln!("the other process dropped its copy within {micros} µs (polling every 100 µs)");

    // this process holds "v2" in L1 from its own write; the child's write
    // must drop it
    let key = format!("{namespace}:k");
    rt.block_on(async {
        assert!(tiered.l1().exists(&key).await.unwrap());
    });
    writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
    next("CHILD WROTE v3");
    let seen = rt.block_on(async {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if cache.get::<String>("k").await.unwrap().as_deref() == Some("v3") {
                return true;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        false
    });
    assert!(seen, "the child's write reached this process");
    assert!(child.wait().unwrap().success(), "the child process failed");
    rt.block_on(async {
        cache.clear().await.unwrap();
    });
}
