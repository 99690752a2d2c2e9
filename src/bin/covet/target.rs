//! What `--url` names, and connecting to it: a cache backend or a session
//! store on a server.

use std::sync::Arc;

use covet::cache::{Cache, CacheBackend, MemcachedBackend, RedisBackend, SqlBackend};
use covet::session::{CacheStore, RedisStore, SessionStore, SqlStore};

use crate::{CliError, Options};

/// The URLs `--url` takes, for error messages.
const EXPECTED: &str = "redis://, rediss://, redis-cluster://host:port,host:port, \
     memcache://host:port[,host:port], postgres://, mysql:// (or mariadb://) or sqlite://FILE";

/// The kind of server a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Server {
    /// One Redis server (the URL as given).
    Redis(String),
    /// A Redis Cluster, through these nodes (`redis://host:port` each).
    RedisCluster(Vec<String>),
    /// Memcached servers (`memcache://host:port` each).
    Memcached(Vec<String>),
    /// PostgreSQL, MySQL/MariaDB or SQLite (the URL as given).
    Sql(String),
}

/// The hosts of `scheme://host:port,host:port`, each as `prefix://host`.
fn hosts(rest: &str, prefix: &str) -> Result<Vec<String>, CliError> {
    let hosts: Vec<String> = rest
        .trim_end_matches('/')
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("{prefix}://{h}"))
        .collect();
    if hosts.is_empty() {
        return Err(CliError::Usage(format!(
            "no host in the URL; expected {prefix}://host:port"
        )));
    }
    Ok(hosts)
}

/// Reads `--url`.
pub(crate) fn parse(url: &str) -> Result<Server, CliError> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => match url.split_once(':') {
            // `sqlite:file.db` and `sqlite::memory:`.
            Some((s, rest)) if s.eq_ignore_ascii_case("sqlite") => (s, rest),
            _ => {
                return Err(CliError::Usage(format!(
                    "`{}` is not a URL; expected {EXPECTED}",
                    shown(url)
                )));
            }
        },
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(Server::Redis(url.to_owned())),
        "redis-cluster" => Ok(Server::RedisCluster(hosts(rest, "redis")?)),
        "rediss-cluster" => Ok(Server::RedisCluster(hosts(rest, "rediss")?)),
        "memcache" | "memcached" => Ok(Server::Memcached(hosts(rest, "memcache")?)),
        "postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite" => {
            Ok(Server::Sql(url.to_owned()))
        }
        "memory" => Err(CliError::Usage(
            "an in-memory cache or session store lives inside its process; the command line \
             reaches server backends only"
                .to_owned(),
        )),
        other => Err(CliError::Usage(format!(
            "unsupported URL scheme `{}`; expected {EXPECTED}",
            shown(other)
        ))),
    }
}

/// At most 40 characters of what the user typed, for messages (a URL may
/// hold a password: only the part before `@` is cut off).
fn shown(text: &str) -> String {
    let text = text.rsplit_once('@').map_or(text, |(_, host)| host);
    text.chars().take(40).collect()
}

impl Server {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Server::Redis(_) => "redis",
            Server::RedisCluster(_) => "redis-cluster",
            Server::Memcached(_) => "memcached",
            Server::Sql(url) => match url.split(':').next().map(str::to_ascii_lowercase) {
                Some(s) if s.starts_with("postgres") => "postgres",
                Some(s) if s == "sqlite" => "sqlite",
                _ => "mysql",
            },
        }
    }

    /// A cache backend on this server. A SQL cache's table must exist
    /// already (the command line never creates one).
    pub(crate) async fn backend(
        &self,
        table: Option<&str>,
        options: Options,
    ) -> Result<Arc<dyn CacheBackend>, CliError> {
        let t = options.timeout;
        let connecting = format!("connecting to {}", self.name());
        let fail = |e: covet::cache::Error| CliError::failed(connecting.clone(), e);
        let work = async {
            Ok::<Arc<dyn CacheBackend>, CliError>(match self {
                Server::Redis(url) => Arc::new(
                    RedisBackend::builder()
                        .connect_timeout(t)
                        .command_timeout(t)
                        .build(url)
                        .await
                        .map_err(fail)?,
                ),
                Server::RedisCluster(nodes) => Arc::new(
                    RedisBackend::builder()
                        .connect_timeout(t)
                        .command_timeout(t)
                        .build_cluster(nodes)
                        .await
                        .map_err(fail)?,
                ),
                Server::Memcached(servers) => Arc::new(
                    MemcachedBackend::builder()
                        .servers(servers.iter().map(String::as_str))
                        .connect_timeout(t)
                        .command_timeout(t)
                        .connect()
                        .await
                        .map_err(fail)?,
                ),
                Server::Sql(url) => {
                    let mut b = SqlBackend::builder()
                        .migrate(false)
                        .sweep_interval(None)
                        .command_timeout(t)
                        .max_connections(2);
                    if let Some(table) = table {
                        b = b.table(table);
                    }
                    Arc::new(b.connect(url).await.map_err(fail)?)
                }
            })
        };
        within(options, &connecting, work).await
    }

    /// A cache on this server under `namespace`.
    pub(crate) async fn cache(
        &self,
        namespace: &str,
        table: Option<&str>,
        options: Options,
    ) -> Result<Cache, CliError> {
        let backend = self.backend(table, options).await?;
        Cache::builder()
            .shared_backend(backend)
            .namespace(namespace)
            .build()
            .map_err(|e| CliError::Usage(format!("invalid namespace: {e}")))
    }

    /// The session store on this server: `RedisStore`, `SqlStore`, or a
    /// `CacheStore` on Memcached.
    pub(crate) async fn store(
        &self,
        prefix: Option<&str>,
        table: Option<&str>,
        options: Options,
    ) -> Result<Arc<dyn SessionStore>, CliError> {
        let t = options.timeout;
        let connecting = format!("connecting to {}", self.name());
        let fail = |e: covet::session::Error| CliError::failed(connecting.clone(), e);
        let work = async {
            Ok::<Arc<dyn SessionStore>, CliError>(match self {
                Server::Redis(url) => {
                    Arc::new(redis_store(prefix, t).connect(url).await.map_err(fail)?)
                }
                Server::RedisCluster(nodes) => Arc::new(
                    redis_store(prefix, t)
                        .connect_cluster(nodes)
                        .await
                        .map_err(fail)?,
                ),
                Server::Sql(url) => {
                    let mut b = SqlStore::builder().max_connections(2);
                    if let Some(table) = table {
                        b = b.table_name(table);
                    }
                    Arc::new(b.connect(url).await.map_err(fail)?)
                }
                Server::Memcached(_) => {
                    let backend = self.backend(None, options).await?;
                    let mut b = CacheStore::builder(backend);
                    if let Some(p) = prefix {
                        b = b.key_prefix(p);
                    }
                    Arc::new(b.build().map_err(|e| CliError::Usage(e.to_string()))?)
                }
            })
        };
        within(options, &connecting, work).await
    }
}

fn redis_store(
    prefix: Option<&str>,
    timeout: std::time::Duration,
) -> covet::session::RedisStoreBuilder {
    let b = RedisStore::builder()
        .connect_timeout(timeout)
        .command_timeout(timeout);
    match prefix {
        Some(p) => b.key_prefix(p),
        None => b,
    }
}

/// `work` within the command timeout.
async fn within<T>(
    options: Options,
    what: &str,
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(options.timeout, work).await {
        Ok(result) => result,
        Err(elapsed) => Err(CliError::failed(what, elapsed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse("redis://127.0.0.1:6379/2").unwrap(),
            Server::Redis("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            parse("redis-cluster://a:1, b:2/").unwrap(),
            Server::RedisCluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(
            parse("memcache://m:11211,n:11211").unwrap(),
            Server::Memcached(vec![
                "memcache://m:11211".into(),
                "memcache://n:11211".into()
            ])
        );
        assert_eq!(parse("sqlite:x.db").unwrap().name(), "sqlite");
        assert_eq!(parse("postgres://u@h/db").unwrap().name(), "postgres");
        assert_eq!(parse("mariadb://u@h/db").unwrap().name(), "mysql");
        for bad in ["memory://", "http://x", "nonsense", "memcache://", ""] {
            assert!(matches!(parse(bad), Err(CliError::Usage(_))), "{bad}");
        }
        // A password never reaches a message.
        let Err(CliError::Usage(m)) = parse("ftp://user:secret@host") else {
            panic!("accepted")
        };
        assert!(!m.contains("secret"), "{m}");
    }
}
