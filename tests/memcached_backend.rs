//! `MemcachedBackend` beyond the shared conformance suite: several servers
//! (one dies, one comes back, one is added), the server's item size, keys
//! that try to inject commands, lost generations, and `#[cached]` on top.
//! Each test starts its own memcached servers on free loopback ports.

#![cfg(feature = "memcached")]

use std::time::{Duration, Instant};

use covet::cache::{Cache, CacheBackend, Error, MemcachedBackend};
use covet_test::{MemcachedProcess, in_ci};

/// `n` servers of our own, or `None` (skipped) where memcached is missing
/// outside CI.
fn servers(n: usize) -> Option<Vec<MemcachedProcess>> {
    match (0..n).map(|_| MemcachedProcess::start()).collect() {
        Ok(s) => Some(s),
        Err(e) if in_ci() => panic!("memcached is required under CI=true: {e}"),
        Err(e) => {
            eprintln!("skipping: cannot start memcached ({e})");
            None
        }
    }
}

async fn backend(servers: &[MemcachedProcess]) -> MemcachedBackend {
    MemcachedBackend::builder()
        .servers(servers.iter().map(MemcachedProcess::url))
        .command_timeout(Duration::from_millis(300))
        .circuit_breaker(2, Duration::from_millis(200))
        .connect()
        .await
        .expect("connecting")
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("app:user:{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_costs_its_share_of_keys_not_the_cache() {
    let Some(mut servers) = servers(3) else {
        return;
    };
    let b = backend(&servers).await;
    let keys = keys(300);
    for k in &keys {
        b.set(k, k.clone().into(), None).await.expect("set");
    }
    servers[1].kill();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = b.get_many(&refs).await.expect("two servers still answer");
    let hits = got.iter().filter(|v| v.is_some()).count();
    assert!(
        (150..=250).contains(&hits),
        "{hits} of 300 on two of three servers"
    );
    for (k, v) in keys.iter().zip(&got) {
        if let Some(v) = v {
            assert_eq!(&v[..], k.as_bytes());
        }
    }
    // single reads: the dead server's keys fail (a miss for `#[cached]`),
    // fast once its breaker is open; the others answer
    let (mut ok, mut failed) = (0, 0);
    let start = Instant::now();
    for k in &keys[..60] {
        match b.get(k).await {
            Ok(Some(_)) => ok += 1,
            Ok(None) => panic!("a live server lost {k}"),
            Err(_) => failed += 1,
        }
    }
    assert!(ok > 20 && failed > 5, "{ok} ok, {failed} failed");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_comes_back_serves_again() {
    let Some(mut servers) = servers(1) else {
        return;
    };
    let port = servers[0].port();
    let b = backend(&servers).await;
    b.set("app:k", "v".into(), None).await.expect("set");
    servers[0].kill();
    assert!(b.get("app:k").await.is_err());
    let _back = MemcachedProcess::start_with(port, &[]).expect("restart on the same port");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match b.set("app:k", "again".into(), None).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("not back after 5 s: {e}"),
        }
    }
    assert_eq!(
        b.get("app:k").await.expect("get").as_deref(),
        Some(&b"again"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_server_moves_about_a_quarter_of_the_keys() {
    let Some(mut servers) = servers(4) else {
        return;
    };
    let fourth = servers.pop().expect("four");
    let three = backend(&servers).await;
    let keys = keys(1000);
    for k in &keys {
        three.set(k, "v".into(), None).await.expect("set");
    }
    servers.push(fourth);
    let four = backend(&servers).await;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let found = four.get_many(&refs).await.expect("get_many");
    let moved = found.iter().filter(|v| v.is_none()).count();
    assert!(
        (180..=320).contains(&moved),
        "{moved} of 1000 keys moved to the new server"
    );
}

#[tokio::test]
async fn values_over_the_item_size_are_refused_and_nothing_is_stored() {
    let Some(servers) = servers(1) else { return };
    let b = backend(&servers).await;
    let limit = b.capabilities().max_value_len.expect("a limit");
    assert!(limit < 1 << 20 && limit > 1_000_000, "{limit}");
    b.set("app:big", "old".into(), None).await.expect("set");
    let err = b
        .set("app:big", vec![1u8; limit + 1].into(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert_eq!(
        b.get("app:big").await.expect("get").as_deref(),
        Some(&b"old"[..])
    );
    b.set("app:big", vec![2u8; limit].into(), None)
        .await
        .expect("just under");

    // a limit set above what the server holds: the server's refusal is
    // the same typed error
    let loose = MemcachedBackend::builder()
        .servers([servers[0].url()])
        .max_value_size(4 << 20)
        .connect()
        .await
        .expect("connect");
    let err = loose
        .set("app:big", vec![3u8; 2 << 20].into(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    // nothing of it stored (memcached drops the old value itself)
    assert_ne!(
        loose.get("app:big").await.expect("get").map(|v| v[0]),
        Some(3)
    );
    // the connection is still usable after the refusal
    loose.set("app:small", "s".into(), None).await.expect("set");
}

#[tokio::test]
async fn keys_cannot_inject_commands() {
    let Some(servers) = servers(1) else { return };
    let b = backend(&servers).await;
    b.set("app:victim", "safe".into(), None).await.expect("set");
    for evil in [
        "app:x\r\nflush_all\r\n",
        "app:x y 0 0 1\r\nz",
        "app:mg app:victim v",
        "app: \u{0}\u{7f}",
    ] {
        b.set(evil, "evil".into(), None)
            .await
            .expect("any key is stored");
        assert_eq!(
            b.get(evil).await.expect("get").as_deref(),
            Some(&b"evil"[..]),
            "{evil:?}"
        );
        assert!(b.delete(evil).await.expect("delete"));
    }
    assert_eq!(
        b.get("app:victim").await.expect("get").as_deref(),
        Some(&b"safe"[..])
    );
    let long_a = format!("app:{}", "a".repeat(5000));
    let long_b = format!("app:{}b", "a".repeat(4999));
    b.set(&long_a, "A".into(), None).await.expect("set");
    b.set(&long_b, "B".into(), None).await.expect("set");
    assert_eq!(
        b.get(&long_a).await.expect("get").as_deref(),
        Some(&b"A"[..])
    );
    assert_eq!(
        b.get(&long_b).await.expect("get").as_deref(),
        Some(&b"B"[..])
    );
}

/// Clearing one namespace leaves the others; a lost generation (evicted)
/// turns its values into misses, never into old values.
#[tokio::test]
async fn namespaces_clear_apart_and_a_lost_generation_is_a_miss() {
    let Some(servers) = servers(2) else { return };
    let b = backend(&servers).await;
    let a = Cache::builder()
        .backend(b.clone())
        .namespace("a")
        .build()
        .expect("cache");
    let other = Cache::builder()
        .backend(b.clone())
        .namespace("ab")
        .build()
        .expect("cache");
    a.set("k", &1u32, None).await.expect("set");
    other.set("k", &2u32, None).await.expect("set");
    a.clear().await.expect("clear");
    assert_eq!(a.get::<u32>("k").await.expect("get"), None);
    assert_eq!(other.get::<u32>("k").await.expect("get"), Some(2));
    a.set("k", &3u32, None).await.expect("set after clear");
    assert_eq!(a.get::<u32>("k").await.expect("get"), Some(3));
    // a prefix that is not a namespace cannot be cleared
    assert!(matches!(
        b.clear("a:k").await,
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        b.delete_pattern("a:*").await,
        Err(Error::Unsupported { .. })
    ));

    // the generation of `ab` is evicted (deleted here by hand, under its
    // item key: the space byte `g` and the namespace, base64 on the wire):
    // its values turn into misses, never into old values
    for s in &servers {
        raw(s.port(), b"md Z2Fi b\r\n").await;
    }
    assert_eq!(other.get::<u32>("k").await.expect("get"), None);
    other.set("k", &4u32, None).await.expect("a new generation");
    assert_eq!(other.get::<u32>("k").await.expect("get"), Some(4));
}

async fn raw(port: u16, command: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    conn.write_all(command).await.expect("write");
    let mut buf = [0u8; 16];
    let _ = conn.read(&mut buf).await.expect("read");
}

#[tokio::test]
async fn cached_functions_and_leases_run_on_memcached() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let Some(servers) = servers(2) else { return };
    let cache = Cache::builder()
        .backend(backend(&servers).await)
        .namespace("fns")
        .build()
        .expect("cache");

    #[covet::cached(cache = cache, key = "square:{n}", ttl = 60, lock)]
    async fn square(cache: &Cache, n: u64) -> u64 {
        let _ = cache;
        RUNS.fetch_add(1, Ordering::SeqCst);
        n * n
    }

    let calls: Vec<_> = (0..10).map(|_| square(&cache, 9)).collect();
    for v in futures_util::future::join_all(calls).await {
        assert_eq!(v, 81);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert!(square_invalidate(&cache, 9).await.expect("invalidate"));
    assert_eq!(square(&cache, 9).await, 81);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

/// A process that remembered a namespace's generation writes in one round
/// trip; when another process cleared the namespace meanwhile, the write
/// notices it in that round trip and is redone in the new generation:
/// never lost, never readable in the old one.
#[tokio::test]
async fn a_write_after_another_process_cleared_is_not_lost() {
    let Some(servers) = servers(2) else { return };
    let one = Cache::builder()
        .backend(backend(&servers).await)
        .namespace("w")
        .build()
        .expect("cache");
    let two = Cache::builder()
        .backend(backend(&servers).await)
        .namespace("w")
        .build()
        .expect("cache");
    for i in 0..20u32 {
        one.set(&format!("k{i}"), &i, None).await.expect("set");
    }
    two.clear().await.expect("clear from the other process");
    for i in 0..20u32 {
        assert_eq!(
            one.get::<u32>(&format!("k{i}")).await.expect("get"),
            None,
            "cleared"
        );
    }
    two.clear()
        .await
        .expect("cleared again: one's memory of the generation is stale");
    for i in 0..20u32 {
        one.set(&format!("k{i}"), &(i + 100), None)
            .await
            .expect("set");
    }
    for i in 0..20u32 {
        assert_eq!(
            two.get::<u32>(&format!("k{i}")).await.expect("get"),
            Some(i + 100),
            "k{i}"
        );
    }
}
