//! The `covet` command line, run as a process against real servers: Redis,
//! Memcached, PostgreSQL, MariaDB and SQLite; its errors for bad URLs and
//! unreachable servers.

#![cfg(all(
    feature = "cli",
    feature = "axum",
    feature = "redis",
    feature = "memcached",
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use covet::cache::{Cache, MemcachedBackend, RedisBackend, SqlBackend};
use covet::session::store::{Data, Record};
use covet::session::{RedisStore, Session, SessionLayer, SessionStore, SqlStore};
use covet_test::http::TestServer;
use covet_test::{Server, free_port, require, unique_namespace};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

async fn covet(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_covet"))
        .args(args)
        .env_remove("COVET_CACHE_URL")
        .env_remove("COVET_SESSION_URL")
        .output()
        .await
        .expect("running covet");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `covet cache <command> --json --url URL --namespace NS [extra...]`.
async fn cache_json(command: &[&str], url: &str, ns: &str, extra: &[&str]) -> Run {
    let mut args = vec!["cache"];
    args.extend_from_slice(command);
    args.extend_from_slice(&["--json", "--url", url, "--namespace", ns]);
    args.extend_from_slice(extra);
    covet(&args).await
}

/// Stores a few values in `cache`, then drives every cache command.
async fn cache_commands(cache: &Cache, url: &str, extra: &[&str], counts: bool) {
    let ns = cache.namespace().to_owned();
    cache
        .set("a", &7u32, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    cache.set("b", &"text".to_owned(), None).await.unwrap();
    cache.set("user:1", &1u8, None).await.unwrap();
    cache.set("user:2", &2u8, None).await.unwrap();

    let stats = cache_json(&["stats"], url, &ns, extra).await.ok().json();
    assert_eq!(stats["namespace"], ns.as_str());
    if counts {
        assert_eq!(stats["keys"], 4, "{stats}");
    } else {
        assert_eq!(stats["keys"], Value::Null, "{stats}");
    }

    let a = cache_json(&["get", "a"], url, &ns, extra).await.ok().json();
    assert_eq!(a["found"], true, "{a}");
    assert_eq!(a["codec"], "postcard");
    assert_eq!(a["payload_hex"], "07");
    let ttl = a["ttl_ms"].as_u64().expect("a TTL");
    assert!(ttl > 0 && ttl <= 60_000, "{a}");
    let b = cache_json(&["get", "b"], url, &ns, extra).await.ok().json();
    assert_eq!(b["ttl_ms"], Value::Null, "{b}");
    let missing = cache_json(&["get", "nope"], url, &ns, extra)
        .await
        .ok()
        .json();
    assert_eq!(missing["found"], false);

    let deleted = cache_json(&["delete", "a"], url, &ns, extra)
        .await
        .ok()
        .json();
    assert_eq!(deleted["deleted"], 1);
    assert_eq!(cache.get::<u32>("a").await.unwrap(), None);
    if counts {
        let by_pattern = cache_json(&["delete", "user:*", "--pattern"], url, &ns, extra)
            .await
            .ok()
            .json();
        assert_eq!(by_pattern["deleted"], 2, "{by_pattern}");
        assert_eq!(cache.get::<u8>("user:1").await.unwrap(), None);
    }

    // Flushing asks for --yes, and deletes nothing without it.
    let refused = cache_json(&["flush"], url, &ns, extra).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(
        cache.get::<String>("b").await.unwrap().as_deref(),
        Some("text")
    );

    let flushed = cache_json(&["flush", "--yes"], url, &ns, extra)
        .await
        .ok()
        .json();
    assert_eq!(flushed["invalidated"], true, "{flushed}");
    assert_eq!(cache.get::<String>("b").await.unwrap(), None);
    if counts {
        let stats = cache_json(&["stats"], url, &ns, extra).await.ok().json();
        assert_eq!(stats["keys"], 0, "{stats}");
    }
}

#[tokio::test]
async fn cache_commands_on_redis() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let cache = Cache::builder()
        .backend(RedisBackend::connect(&url).await.unwrap())
        .namespace(unique_namespace("cli"))
        .build()
        .unwrap();
    cache_commands(&cache, &url, &[], true).await;

    // Text for people.
    let text = covet(&["cache", "stats", "--url", &url, "-n", cache.namespace()])
        .await
        .ok();
    assert!(text.stdout.contains("backend    redis"), "{}", text.stdout);
    assert!(text.stdout.contains("keys       0"), "{}", text.stdout);
}

#[cfg(feature = "json")]
#[tokio::test]
async fn json_values_are_shown_as_json_and_foreign_bytes_raw() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let cache = Cache::builder()
        .backend(RedisBackend::connect(&url).await.unwrap())
        .namespace(unique_namespace("cli"))
        .codec(covet::cache::Codec::Json)
        .build()
        .unwrap();
    cache
        .set("user", &serde_json::json!({ "name": "Ada", "id": 7 }), None)
        .await
        .unwrap();
    let got = cache_json(&["get", "user"], &url, cache.namespace(), &[])
        .await
        .ok()
        .json();
    assert_eq!(got["codec"], "json");
    assert_eq!(got["value"], serde_json::json!({ "name": "Ada", "id": 7 }));
    // Bytes some other program wrote: shown raw, with why they are not
    // an envelope.
    let key = format!("{}:foreign", cache.namespace());
    cache
        .backend()
        .set(&key, bytes::Bytes::from_static(b"hi"), None)
        .await
        .unwrap();
    let raw = cache_json(&["get", "foreign"], &url, cache.namespace(), &[])
        .await
        .ok()
        .json();
    assert_eq!(raw["raw_hex"], "6869", "{raw}");
    assert!(raw["envelope_error"].as_str().is_some());
    cache.clear().await.unwrap();
}

#[tokio::test]
async fn cache_and_session_commands_on_a_redis_cluster() {
    let Some(urls) = require(Server::RedisCluster) else {
        return;
    };
    let nodes = covet_test::split_urls(&urls);
    let cache = Cache::builder()
        .backend(RedisBackend::connect_cluster(&nodes).await.unwrap())
        .namespace(unique_namespace("cli"))
        .build()
        .unwrap();
    // `redis-cluster://host:port,host:port`: the nodes without their scheme.
    let hosts: Vec<&str> = nodes
        .iter()
        .map(|u| u.trim_start_matches("redis://"))
        .collect();
    let url = format!("redis-cluster://{}", hosts.join(","));
    cache_commands(&cache, &url, &[], true).await;

    let prefix = format!("{}:", unique_namespace("cli"));
    let store = RedisStore::builder()
        .key_prefix(prefix.as_str())
        .connect_cluster(&nodes)
        .await
        .unwrap();
    let server = login_app(store.clone()).await;
    log_in(&server, &["erin", "erin"]).await;
    let extra = ["--prefix", prefix.as_str()];
    let count = sessions_json(&["count"], &url, &extra).await.ok().json();
    assert_eq!(count["active"], 2, "{count}");
    let revoked = sessions_json(&["revoke-user", "erin"], &url, &extra)
        .await
        .ok()
        .json();
    assert_eq!(revoked["deleted"], 2, "{revoked}");
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn cache_commands_on_memcached() {
    let Some(url) = require(Server::Memcached) else {
        return;
    };
    let cache = Cache::builder()
        .backend(MemcachedBackend::connect(&url).await.unwrap())
        .namespace(unique_namespace("cli"))
        .build()
        .unwrap();
    // Memcached cannot count or delete by pattern; everything else works.
    cache_commands(&cache, &url, &[], false).await;
    let pattern = cache_json(&["delete", "x*", "--pattern"], &url, cache.namespace(), &[]).await;
    assert_eq!(pattern.code, 2, "{}", pattern.stderr);
}

#[tokio::test]
async fn cache_commands_on_sql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cache.db").display()
    );
    let mut urls = vec![sqlite];
    urls.extend(require(Server::Postgres));
    urls.extend(require(Server::Mysql));
    for url in urls {
        let table = unique_namespace("cli_cache").replace('-', "_");
        // The command line never creates a table: the application did.
        let backend = SqlBackend::builder()
            .table(table.as_str())
            .connect(&url)
            .await
            .unwrap();
        let cache = Cache::builder()
            .backend(backend.clone())
            .namespace(unique_namespace("cli"))
            .build()
            .unwrap();
        cache_commands(&cache, &url, &["--table", &table], true).await;
        let wrong = cache_json(&["stats"], &url, "x", &["--table", "no_such_table"]).await;
        assert_eq!(wrong.code, 1, "{}", wrong.stderr);
        drop(backend);
        drop_tables(
            &url,
            &[&table, &format!("{table}_tags"), &format!("{table}_leases")],
        )
        .await;
    }
}

/// Drops this test's own tables (SQLite files go with their directory).
async fn drop_tables(url: &str, tables: &[&str]) {
    for table in tables {
        let sql = format!("DROP TABLE IF EXISTS {table}");
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        } else if url.starts_with("mysql") {
            let pool = sqlx::MySqlPool::connect(url).await.unwrap();
            sqlx::query(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// An app whose `/login/{user}` logs a fresh session in as `user`.
async fn login_app(store: impl SessionStore) -> TestServer {
    let app = Router::new()
        .route(
            "/login/{user}",
            get(|session: Session, Path(user): Path<String>| async move {
                session.login(&user).expect("login");
                "in"
            }),
        )
        .layer(SessionLayer::new(store));
    TestServer::start(app).await
}

/// Logs in each user from a new client (a new session each).
async fn log_in(server: &TestServer, users: &[&str]) {
    for user in users {
        let resp = reqwest::get(server.url(&format!("/login/{user}")))
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("set-cookie"));
    }
}

async fn sessions_json(command: &[&str], url: &str, extra: &[&str]) -> Run {
    let mut args = vec!["sessions"];
    args.extend_from_slice(command);
    args.extend_from_slice(&["--json", "--url", url]);
    args.extend_from_slice(extra);
    covet(&args).await
}

#[tokio::test]
async fn sessions_on_redis() {
    let Some(url) = require(Server::Redis) else {
        return;
    };
    let prefix = format!("{}:", unique_namespace("cli"));
    let store = RedisStore::builder()
        .key_prefix(prefix.as_str())
        .connect(&url)
        .await
        .unwrap();
    let server = login_app(store.clone()).await;
    log_in(&server, &["alice", "alice", "bob"]).await;
    let extra = ["--prefix", prefix.as_str()];

    let count = sessions_json(&["count"], &url, &extra).await.ok().json();
    assert_eq!(count["active"], 3, "{count}");
    let revoked = sessions_json(&["revoke-user", "alice"], &url, &extra)
        .await
        .ok()
        .json();
    assert_eq!(revoked["deleted"], 2, "{revoked}");
    assert_eq!(store.count().await.unwrap(), 1);
    assert!(store.list_user_sessions("alice").await.unwrap().is_empty());
    // Redis expires sessions itself.
    let purged = sessions_json(&["purge-expired"], &url, &extra)
        .await
        .ok()
        .json();
    assert_eq!(purged["deleted"], 0);
    let text = covet(&["sessions", "count", "--url", &url, "--prefix", &prefix])
        .await
        .ok();
    assert_eq!(text.stdout.trim(), "1 active sessions");
}

#[tokio::test]
async fn sessions_on_sql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let mut urls = vec![sqlite];
    urls.extend(require(Server::Postgres));
    urls.extend(require(Server::Mysql));
    for url in urls {
        let table = unique_namespace("cli_sessions").replace('-', "_");
        let store = SqlStore::builder()
            .table_name(table.as_str())
            .connect(&url)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let server = login_app(store.clone()).await;
        log_in(&server, &["alice", "alice", "carol"]).await;
        // One session already past its expiry.
        let past = SystemTime::now() - Duration::from_secs(60);
        store
            .create(&Record::new(Data::default(), past))
            .await
            .unwrap();
        let extra = ["--table", table.as_str()];

        let count = sessions_json(&["count"], &url, &extra).await.ok().json();
        assert_eq!(count["active"], 3, "{url}: {count}");
        let purged = sessions_json(&["purge-expired"], &url, &extra)
            .await
            .ok()
            .json();
        assert_eq!(purged["deleted"], 1, "{url}: {purged}");
        let revoked = sessions_json(&["revoke-user", "alice"], &url, &extra)
            .await
            .ok()
            .json();
        assert_eq!(revoked["deleted"], 2, "{url}: {revoked}");
        assert_eq!(store.count().await.unwrap(), 1);
        drop(server);
        drop(store);
        drop_tables(&url, &[&table]).await;
    }
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_fail_clearly() {
    for (url, code, says) in [
        ("ftp://user:secret@host", 2, "unsupported URL scheme"),
        ("memory://", 2, "inside its process"),
        ("localhost:6379", 2, "not a URL"),
        ("memcache://", 2, "no host"),
    ] {
        let run = covet(&["cache", "stats", "--url", url]).await;
        assert_eq!(run.code, code, "{url}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{url}: {}", run.stderr);
        assert!(!run.stderr.contains("secret"), "{}", run.stderr);
    }
    let port = free_port();
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("memcache://127.0.0.1:{port}"),
        format!("postgres://postgres@127.0.0.1:{port}/test"),
        format!("mysql://root@127.0.0.1:{port}/test"),
    ] {
        let run = covet(&["--timeout", "2", "cache", "stats", "--url", &url]).await;
        assert_eq!(run.code, 1, "{url}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: connecting to"),
            "{url}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let json = covet(&[
            "--json",
            "--timeout",
            "2",
            "sessions",
            "count",
            "--url",
            &url,
        ])
        .await;
        assert_eq!(json.code, 1, "{url}: {}", json.stderr);
        assert!(json.json()["error"].as_str().is_some());
    }
    // A store that cannot count says so.
    if let Some(url) = require(Server::Memcached) {
        let run = sessions_json(&["count"], &url, &[]).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
    }
}

#[tokio::test]
async fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["cache", "--help"],
        vec!["cache", "stats", "--help"],
        vec!["cache", "get", "--help"],
        vec!["cache", "delete", "--help"],
        vec!["cache", "flush", "--help"],
        vec!["sessions", "--help"],
        vec!["sessions", "count", "--help"],
        vec!["sessions", "purge-expired", "--help"],
        vec!["sessions", "revoke-user", "--help"],
    ] {
        let run = covet(&args).await.ok();
        assert!(
            run.stdout.contains("Usage: covet"),
            "{args:?}: {}",
            run.stdout
        );
    }
    let missing = covet(&["cache", "get"]).await;
    assert_eq!(missing.code, 2);
}
