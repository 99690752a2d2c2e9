//! `covet cache stats|get|delete|flush`.

use clap::{Args, Subcommand};
use covet::cache::{Cache, Envelope, KeyTtl};
use serde_json::{Value, json};

use crate::target::{Server, parse};
use crate::{CliError, Options, Report};

/// Where the cache is.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The cache's server: redis://, rediss://, redis-cluster://host:port,host:port,
    /// memcache://host:port[,host:port], postgres://, mysql:// or sqlite://FILE.
    #[arg(long, env = "COVET_CACHE_URL")]
    url: String,
    /// The cache's namespace (what `Cache::builder().namespace(..)` set).
    #[arg(long, short, default_value = "covet")]
    namespace: String,
    /// The table of a SQL cache (default `covet_cache`).
    #[arg(long)]
    table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// How many keys the namespace holds (Redis, SQL; Memcached cannot count).
    Stats(Target),
    /// One entry: its size, time to live, codec and value.
    Get {
        /// The key, without the namespace.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Deletes entries by key, or every key a glob pattern matches.
    Delete {
        /// Keys (without the namespace), or patterns with `--pattern`.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Treat each argument as a glob pattern (`*`, `?`, `[a-z]`).
        #[arg(long)]
        pattern: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Deletes every entry of the namespace (asks for `--yes`).
    Flush {
        /// Really delete everything in the namespace.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: Target,
    },
}

impl CacheCommand {
    fn target(&self) -> &Target {
        match self {
            CacheCommand::Stats(t)
            | CacheCommand::Get { target: t, .. }
            | CacheCommand::Delete { target: t, .. }
            | CacheCommand::Flush { target: t, .. } => t,
        }
    }
}

pub(crate) async fn run(command: CacheCommand, options: Options) -> Result<Report, CliError> {
    let target = command.target();
    let server = parse(&target.url)?;
    if let CacheCommand::Flush { yes: false, .. } = command {
        return Err(CliError::Usage(format!(
            "flush deletes every entry of namespace `{}`; add --yes to go ahead",
            target.namespace
        )));
    }
    let cache = server
        .cache(&target.namespace, target.table.as_deref(), options)
        .await?;
    match &command {
        CacheCommand::Stats(_) => stats(&server, &cache, options).await,
        CacheCommand::Get { key, .. } => get(&cache, key).await,
        CacheCommand::Delete { keys, pattern, .. } => delete(&cache, keys, *pattern, options).await,
        CacheCommand::Flush { .. } => flush(&server, &cache, options).await,
    }
}

fn failed(what: &str) -> impl FnOnce(covet::cache::Error) -> CliError + '_ {
    move |e| match e {
        covet::cache::Error::Unsupported { .. }
        | covet::cache::Error::InvalidKey { .. }
        | covet::cache::Error::InvalidPattern { .. } => CliError::Usage(format!("{what}: {e}")),
        other => CliError::failed(what, other),
    }
}

async fn stats(server: &Server, cache: &Cache, options: Options) -> Result<Report, CliError> {
    let pattern = format!("{}:*", cache.namespace());
    let counted = options
        .progress("counting keys", cache.backend().count_pattern(&pattern))
        .await;
    let keys = match counted {
        Ok(n) => Some(n),
        Err(covet::cache::Error::Unsupported { .. }) => None,
        Err(e) => return Err(failed("counting keys")(e)),
    };
    let backend = server.name();
    let namespace = cache.namespace();
    let text = format!(
        "backend    {backend}\nnamespace  {namespace}\nkeys       {}",
        keys.map_or_else(
            || "(this backend cannot count keys)".to_owned(),
            |n| n.to_string()
        )
    );
    Ok(Report {
        text,
        json: json!({ "backend": backend, "namespace": namespace, "keys": keys }),
    })
}

fn ttl_json(ttl: KeyTtl) -> (Value, String) {
    match ttl {
        KeyTtl::Expires(d) => {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            (json!(ms), format!("{:.3} s", d.as_secs_f64()))
        }
        _ => (Value::Null, "none (persistent)".to_owned()),
    }
}

async fn get(cache: &Cache, key: &str) -> Result<Report, CliError> {
    let full = format!("{}:{key}", cache.namespace());
    let found = cache
        .backend()
        .get_with_ttl(&full)
        .await
        .map_err(failed("reading the key"))?;
    let Some((bytes, ttl)) = found else {
        return Ok(Report {
            text: format!("{key}: not found"),
            json: json!({ "key": key, "found": false }),
        });
    };
    let (ttl_ms, ttl_text) = ttl_json(ttl);
    let mut json = json!({
        "key": key,
        "found": true,
        "bytes": bytes.len(),
        "ttl_ms": ttl_ms,
    });
    let mut text = format!(
        "key        {key}\nbytes      {}\nttl        {ttl_text}",
        bytes.len()
    );
    match Envelope::parse(&bytes) {
        Ok(env) => {
            let codec = env.codec.map_or("unknown", |c| c.name());
            json["codec"] = json!(codec);
            json["schema"] = json!(format!("{:016x}", env.fingerprint));
            json["payload_bytes"] = json!(env.payload.len());
            text.push_str(&format!(
                "\ncodec      {codec}\nschema     {:016x}",
                env.fingerprint
            ));
            let readable = (codec == "json")
                .then(|| serde_json::from_slice::<Value>(env.payload).ok())
                .flatten();
            match readable {
                Some(value) => {
                    text.push_str(&format!("\nvalue      {value}"));
                    json["value"] = value;
                }
                None => {
                    let hex = hex(env.payload);
                    text.push_str(&format!("\npayload    {hex}"));
                    json["payload_hex"] = json!(hex);
                }
            }
        }
        Err(e) => {
            // Not written by a covet cache (or corrupt): the raw bytes.
            let hex = hex(&bytes);
            text.push_str(&format!("\nenvelope   {e}\nraw        {hex}"));
            json["envelope_error"] = json!(e.to_string());
            json["raw_hex"] = json!(hex);
        }
    }
    Ok(Report { text, json })
}

/// Lowercase hex of at most 4 KiB of `bytes` (longer values end in `...`).
fn hex(bytes: &[u8]) -> String {
    const SHOWN: usize = 4096;
    let mut out = String::with_capacity(bytes.len().min(SHOWN) * 2 + 3);
    for b in bytes.iter().take(SHOWN) {
        out.push_str(&format!("{b:02x}"));
    }
    if bytes.len() > SHOWN {
        out.push_str("...");
    }
    out
}

async fn delete(
    cache: &Cache,
    keys: &[String],
    pattern: bool,
    options: Options,
) -> Result<Report, CliError> {
    let mut deleted = 0u64;
    for key in keys {
        deleted += if pattern {
            options
                .progress(&format!("deleting {key}"), cache.delete_pattern(key))
                .await
                .map_err(failed("deleting by pattern"))?
        } else {
            u64::from(cache.delete(key).await.map_err(failed("deleting"))?)
        };
    }
    Ok(Report {
        text: format!("deleted {deleted}"),
        json: json!({ "namespace": cache.namespace(), "deleted": deleted }),
    })
}

async fn flush(server: &Server, cache: &Cache, options: Options) -> Result<Report, CliError> {
    let namespace = cache.namespace();
    let deleted = options
        .progress(&format!("flushing namespace {namespace}"), cache.clear())
        .await
        .map_err(failed("flushing"))?;
    if matches!(server, Server::Memcached(_)) {
        // Memcached cannot list keys: the namespace moves to a new
        // generation, and every older entry reads as missing.
        return Ok(Report {
            text: format!("flushed namespace {namespace}: every entry invalidated"),
            json: json!({ "namespace": namespace, "deleted": null, "invalidated": true }),
        });
    }
    Ok(Report {
        text: format!("flushed namespace {namespace}: {deleted} deleted"),
        json: json!({ "namespace": namespace, "deleted": deleted, "invalidated": true }),
    })
}
