//! Test support for covet: where the real servers are, unique namespaces
//! per test, and throwaway server processes on free loopback ports.
//!
//! Servers are found through run-time settings (`COVET_REDIS_URL`,
//! `COVET_REDIS_CLUSTER_URLS`, `COVET_POSTGRES_URL`, `COVET_MYSQL_URL`,
//! `COVET_MEMCACHED_URL`) with this machine's loopback defaults. [`require`] decides what a test does when a
//! server is missing: under `CI=true` it panics (never a silent skip);
//! elsewhere it returns `None` so a developer without that server can still
//! run the rest.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Used by the code [`backend_conformance!`] generates.
#[doc(hidden)]
pub use futures_util::future::join_all as __join_all;

pub mod conformance;
pub mod http;
pub mod proxy;
pub mod session_conformance;

/// A server the tests can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Redis.
    Redis,
    /// A Redis Cluster: a comma-separated list of node URLs (`scripts/test`
    /// starts three masters on free loopback ports and sets it).
    RedisCluster,
    /// PostgreSQL.
    Postgres,
    /// MariaDB / MySQL.
    Mysql,
    /// Memcached.
    Memcached,
    /// Three memcached servers: a comma-separated list of URLs
    /// (`scripts/test` starts them on free loopback ports and sets it).
    MemcachedPool,
}

impl Server {
    /// The environment variable naming the server's URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Server::Redis => "COVET_REDIS_URL",
            Server::RedisCluster => "COVET_REDIS_CLUSTER_URLS",
            Server::Postgres => "COVET_POSTGRES_URL",
            Server::Mysql => "COVET_MYSQL_URL",
            Server::Memcached => "COVET_MEMCACHED_URL",
            Server::MemcachedPool => "COVET_MEMCACHED_POOL_URLS",
        }
    }

    /// This machine's default URL.
    pub fn default_url(self) -> &'static str {
        match self {
            Server::Redis => "redis://127.0.0.1:6379",
            Server::RedisCluster => {
                "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002"
            }
            Server::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Server::Mysql => "mysql://root@127.0.0.1:3306/test",
            Server::Memcached => "memcache://127.0.0.1:11211",
            Server::MemcachedPool => {
                "memcache://127.0.0.1:11212,memcache://127.0.0.1:11213,memcache://127.0.0.1:11214"
            }
        }
    }

    /// The URL, from the environment or the default.
    pub fn url(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| self.default_url().to_owned())
    }
}

/// Whether we run under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Whether something accepts TCP connections at the URL's host and port.
pub fn reachable(url: &str) -> bool {
    let Some((host, port)) = host_port(url) else {
        return false;
    };
    let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The command timeout the conformance suites give SQL backends. The
/// whole test suite runs its binaries side by side on a small machine, so
/// a transaction queued behind 20 others on one row (the `incr` cases) can
/// wait past the 2 s production default while the server is merely busy;
/// these suites check results, not latency.
pub const SQL_TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The URLs of a comma-separated list (as in `COVET_REDIS_CLUSTER_URLS`).
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The server's URL (for [`Server::RedisCluster`], the comma-separated list,
/// see [`split_urls`]) if it is reachable (every node of a list). When it
/// is not: panics under CI, otherwise prints why the test is skipped and
/// returns `None`.
pub fn require(server: Server) -> Option<String> {
    let url = server.url();
    let urls = split_urls(&url);
    if !urls.is_empty() && urls.iter().all(|u| reachable(u)) {
        return Some(url);
    }
    if in_ci() {
        panic!(
            "{server:?} is required under CI=true but {url} is unreachable ({} )",
            server.env_var()
        );
    }
    eprintln!(
        "skipping: {server:?} at {url} is unreachable (set {})",
        server.env_var()
    );
    None
}

/// A namespace no other test (or earlier run) uses: `prefix` plus the
/// process id, a time stamp and a counter.
pub fn unique_namespace(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        t & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// A `redis-server` owned by one test, on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
}

impl RedisProcess {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> std::io::Result<RedisProcess> {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (used to restart a killed server on its old port).
    pub fn start_on(port: u16) -> std::io::Result<RedisProcess> {
        Self::start_with(port, &[])
    }

    /// Starts one on `port` with extra `redis-server` arguments (such as
    /// `["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]`).
    pub fn start_with(port: u16, args: &[&str]) -> std::io::Result<RedisProcess> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_until_listening(port, "redis-server")?;
        Ok(RedisProcess {
            child: Some(child),
            port,
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes it (`SIGSTOP`): connections are still accepted by the
    /// kernel but nothing answers, like a hung server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} redis-server");
        }
    }

    /// Kills it now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // a paused process must run again to die of SIGKILL promptly
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to 10 s for a server just started on `port` to accept connections.
fn wait_until_listening(port: u16, name: &str) -> std::io::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline {
            return Err(std::io::Error::other(format!("{name} did not start")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A `memcached` of our own on a free loopback port, killed on drop (for
/// tests that need several servers, or one that dies and comes back).
#[derive(Debug)]
pub struct MemcachedProcess {
    child: Option<Child>,
    port: u16,
}

impl MemcachedProcess {
    /// Starts one (64 MB, loopback only) and waits until it accepts connections.
    pub fn start() -> std::io::Result<MemcachedProcess> {
        Self::start_with(free_port(), &[])
    }

    /// Starts one on `port` with extra arguments (such as `["-I", "2m"]`).
    pub fn start_with(port: u16, args: &[&str]) -> std::io::Result<MemcachedProcess> {
        let mut cmd = Command::new("memcached");
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ]);
        // run as root, memcached wants a user to switch to; as anyone
        // else, the flag changes nothing
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        cmd.args(["-u", &user]);
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_until_listening(port, "memcached")?;
        Ok(MemcachedProcess {
            child: Some(child),
            port,
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// Kills it now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MemcachedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/test"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            host_port("redis://127.0.0.1:6379"),
            Some(("127.0.0.1".into(), 6379))
        );
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn splits_url_lists() {
        assert_eq!(
            split_urls("redis://a:1, redis://b:2,"),
            vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()]
        );
        assert!(split_urls("").is_empty());
    }

    #[test]
    fn namespaces_are_unique() {
        assert_ne!(unique_namespace("t"), unique_namespace("t"));
    }
}
