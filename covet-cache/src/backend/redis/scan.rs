//! Walking the key space: `SCAN` on the single server or on every primary
//! of a cluster, with the exact filter applied on our side, and `UNLINK`
//! of what matches, page by page. One walker serves pattern deletes,
//! `clear`, and the tag sets `clear` drops.

use futures_util::future::try_join_all;
use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};

use super::commands::{BATCH, RESERVED_PREFIX};
use super::connection::Conn;
use super::{NAME, RedisBackend};
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::key::Glob;

/// Which keys a walk may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    /// Users' keys (never the backend's own `:covet:` keys).
    User,
    /// The backend's own keys.
    Reserved,
}

/// The `SCAN MATCH` pattern for a glob: its literal runs, escaped, with
/// every wildcard (`?`, classes, `*`) widened to `*`. Redis matches bytes
/// where [`Glob`] matches characters, so the server-side pattern only has
/// to select a superset; the exact filter runs on our side.
pub(super) fn scan_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut star = false;
    let mut chars = pattern.chars();
    let push_star = |out: &mut String, star: &mut bool| {
        if !*star {
            out.push('*');
            *star = true;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => push_star(&mut out, &mut star),
            '[' => {
                // The first unescaped `]` closes a class (`Glob` rejects `[]`).
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        ']' => break,
                        _ => {}
                    }
                }
                push_star(&mut out, &mut star);
            }
            c => {
                let lit = if c == '\\' {
                    match chars.next() {
                        Some(e) => e,
                        None => break,
                    }
                } else {
                    c
                };
                if matches!(lit, '*' | '?' | '[' | ']' | '\\') {
                    out.push('\\');
                }
                out.push(lit);
                star = false;
            }
        }
    }
    out
}

impl RedisBackend {
    /// Unlinks the keys of `space` that the server-side `pattern` selects
    /// and `keep` accepts, on the single server or on every primary of the
    /// cluster; returns how many existed.
    pub(super) async fn unlink_matching(
        &self,
        space: Space,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64> {
        self.walk_matching(space, pattern, keep, true).await
    }

    /// Counts the users' keys that start with `prefix` and that `keep`
    /// accepts, on the single server or on every primary of the cluster: a
    /// `SCAN` of the whole keyspace (O(keys), in pages, never blocking the
    /// server). Not public API.
    #[doc(hidden)]
    pub async fn count_prefixed(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64> {
        let pattern = format!("{}*", crate::key::escape_glob(prefix));
        let keep = |k: &str| k.starts_with(prefix) && keep(k);
        self.walk_matching(Space::User, &pattern, &keep, false)
            .await
    }

    /// Unlinks (or counts) what `pattern` selects and `keep` accepts.
    pub(super) async fn walk_matching(
        &self,
        space: Space,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
        unlink: bool,
    ) -> Result<u64> {
        if !self.inner.link.is_cluster() {
            return self.scan_unlink(None, space, pattern, keep, unlink).await;
        }
        let primaries = self.primaries().await?;
        let counts = try_join_all(
            primaries
                .iter()
                .map(|node| self.scan_unlink(Some(node), space, pattern, keep, unlink)),
        )
        .await?;
        Ok(counts.into_iter().sum())
    }

    /// Walks every `SCAN` page of one server (`node`, or the single
    /// server), unlinking (or only counting) the keys that `keep` accepts.
    async fn scan_unlink(
        &self,
        node: Option<&(String, u16)>,
        space: Space,
        pattern: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
        unlink: bool,
    ) -> Result<u64> {
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(BATCH);
            let cmd = &cmd;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .call("SCAN", true, move |c| async move {
                    match (c, node) {
                        (Conn::Cluster(mut c), Some((host, port))) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.clone(),
                                    port: *port,
                                });
                            let reply = c.route_command(cmd.clone(), routing).await?;
                            Ok(redis::from_redis_value(reply)?)
                        }
                        (mut c, _) => cmd.query_async(&mut c).await,
                    }
                })
                .await?;
            let batch: Vec<&str> = keys
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok())
                .filter(|k| {
                    (k.starts_with(RESERVED_PREFIX) == (space == Space::Reserved)) && keep(k)
                })
                .collect();
            removed += if unlink {
                self.unlink(&batch).await?
            } else {
                batch.len() as u64
            };
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// The primaries of the cluster, as `(host, port)`.
    pub(super) async fn primaries(&self) -> Result<Vec<(String, u16)>> {
        let reply: Value = self
            .call("CLUSTER PING", true, |c| async move {
                match c {
                    Conn::Cluster(mut c) => {
                        c.route_command(
                            redis::cmd("PING"),
                            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                        )
                        .await
                    }
                    Conn::Single(_) => Ok(Value::Nil),
                }
            })
            .await?;
        let Value::Map(nodes) = reply else {
            return Err(Error::Backend {
                backend: NAME,
                message: "the cluster did not list its primaries".into(),
                source: None,
            });
        };
        let mut out = Vec::with_capacity(nodes.len());
        for (addr, _) in nodes {
            let addr: String = redis::from_redis_value(addr)
                .map_err(|e| Error::backend(NAME, "reading a cluster node address", e))?;
            let parsed = addr.rsplit_once(':').and_then(|(host, port)| {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some((host.to_owned(), port.parse::<u16>().ok()?))
            });
            match parsed {
                Some(hp) => out.push(hp),
                None => {
                    return Err(Error::Backend {
                        backend: NAME,
                        message: format!("unreadable cluster node address {addr:?}"),
                        source: None,
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Glob;

    #[test]
    fn scan_patterns_keep_literals_and_widen_wildcards() {
        assert_eq!(scan_pattern("ns:user:*"), "ns:user:*");
        assert_eq!(scan_pattern("ns:u?er:[0-9]*"), "ns:u*er:*");
        assert_eq!(scan_pattern("ns:a\\*b"), "ns:a\\*b");
        assert_eq!(scan_pattern("ns:[!\\]x]z"), "ns:*z");
        assert_eq!(scan_pattern("ns:[a-]z"), "ns:*z");
        assert_eq!(scan_pattern("a\\[b\\]\\\\"), "a\\[b\\]\\\\");
    }

    #[test]
    fn scan_patterns_select_a_superset() {
        let patterns = [
            "ns:*",
            "ns:user:?",
            "ns:[a-c]x",
            "ns:[!a]*",
            "ns:a\\*b",
            "ns:é?",
            "ns:[é-ü]",
            "ns:x[\\]]",
            "ns:*:*:end",
        ];
        let keys = [
            "ns:user:1",
            "ns:user:é",
            "ns:bx",
            "ns:zzz",
            "ns:a*b",
            "ns:éü",
            "ns:ö",
            "ns:x]",
            "ns:a:b:c:end",
            "other:user:1",
        ];
        for p in patterns {
            let exact = Glob::new(p).unwrap();
            let server = Glob::new(&scan_pattern(p)).unwrap();
            for k in keys {
                if exact.matches(k) {
                    assert!(server.matches(k), "{p} -> {} misses {k}", scan_pattern(p));
                }
            }
        }
    }
}
