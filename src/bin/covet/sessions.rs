//! `covet sessions count|purge-expired|revoke-user`.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::target::parse;
use crate::{CliError, Options, Report};

/// Where the sessions are.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The store's server: redis://, rediss://, redis-cluster://host:port,host:port,
    /// postgres://, mysql://, sqlite://FILE, or memcache://host:port (a `CacheStore`).
    #[arg(long, env = "COVET_SESSION_URL")]
    url: String,
    /// The store's key prefix (`RedisStore` and `CacheStore` `key_prefix`).
    #[arg(long)]
    prefix: Option<String>,
    /// The table of a SQL store (default `covet_sessions`).
    #[arg(long)]
    table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// How many sessions are active.
    Count(Target),
    /// Deletes expired sessions (SQL; Redis and Memcached expire them
    /// themselves and report 0).
    PurgeExpired(Target),
    /// Deletes every session of one user (what `Session::login` recorded).
    RevokeUser {
        /// The user id given to `Session::login`.
        user: String,
        #[command(flatten)]
        target: Target,
    },
}

fn failed(what: &'static str) -> impl FnOnce(covet::session::Error) -> CliError {
    move |e| match e {
        covet::session::Error::Unsupported { .. } => CliError::Usage(format!("{what}: {e}")),
        other => CliError::failed(what, other),
    }
}

pub(crate) async fn run(command: SessionsCommand, options: Options) -> Result<Report, CliError> {
    let target = match &command {
        SessionsCommand::Count(t)
        | SessionsCommand::PurgeExpired(t)
        | SessionsCommand::RevokeUser { target: t, .. } => t,
    };
    let server = parse(&target.url)?;
    let store = server
        .store(target.prefix.as_deref(), target.table.as_deref(), options)
        .await?;
    let backend = server.name();
    match &command {
        SessionsCommand::Count(_) => {
            let n = options
                .progress("counting sessions", store.count())
                .await
                .map_err(failed("counting sessions"))?;
            Ok(Report {
                text: format!("{n} active sessions"),
                json: json!({ "store": backend, "active": n }),
            })
        }
        SessionsCommand::PurgeExpired(_) => {
            let n = options
                .progress("deleting expired sessions", store.delete_expired())
                .await
                .map_err(failed("deleting expired sessions"))?;
            Ok(Report {
                text: format!("{n} expired sessions deleted"),
                json: json!({ "store": backend, "deleted": n }),
            })
        }
        SessionsCommand::RevokeUser { user, .. } => {
            let n = options
                .progress(
                    "deleting the user's sessions",
                    store.delete_user_sessions(user),
                )
                .await
                .map_err(failed("deleting the user's sessions"))?;
            Ok(Report {
                text: format!("{n} sessions of {user} deleted"),
                json: json!({ "store": backend, "user": user, "deleted": n }),
            })
        }
    }
}
