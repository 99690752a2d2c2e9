//! `covet`: the operations command line of Covet caches and session stores
//! (feature `cli`).
//!
//! ```text
//! covet cache stats --url redis://127.0.0.1:6379 --namespace shop
//! covet cache get user:42 --url redis://127.0.0.1:6379 --namespace shop
//! covet cache delete 'user:*' --pattern --url postgres://localhost/app
//! covet cache flush --yes --url memcache://127.0.0.1:11211 --namespace shop
//! covet sessions count --url redis://127.0.0.1:6379
//! covet sessions purge-expired --url sqlite://sessions.db
//! covet sessions revoke-user alice --url mysql://root@localhost/app
//! ```
//!
//! Every command takes `--json` for one JSON object on standard output.
//! Exit codes: 0 done, 1 the server or store failed (unreachable, refused,
//! an error it returned), 2 the command cannot be run as given (a bad URL,
//! a backend that cannot do it, `flush` without `--yes`).

mod cache;
mod sessions;
mod target;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

/// Inspect and manage Covet caches and session stores.
#[derive(Debug, Parser)]
#[command(name = "covet", version, propagate_version = true)]
struct Cli {
    /// Print one JSON object on standard output instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// How long connecting and each command may take, in seconds.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECONDS")]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Entries of one cache namespace: stats, get, delete, flush.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Sessions of a server store: count, purge-expired, revoke-user.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command cannot be run as given (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The server or store failed (exit code 1).
    #[error("{what}: {source}")]
    Failed {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CliError {
    pub(crate) fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> CliError {
        CliError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed { .. } => 1,
        }
    }

    /// The message with every source in the chain.
    fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self).and_then(std::error::Error::source);
        while let Some(s) = source {
            let line = s.to_string();
            if !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            source = s.source();
        }
        text
    }
}

/// What a command prints: text for people, JSON for scripts.
pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) json: Value,
}

/// Settings every command shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) json: bool,
    pub(crate) timeout: Duration,
}

impl Options {
    /// A spinner on standard error while `work` runs (only on a terminal,
    /// never with `--json`).
    pub(crate) async fn progress<T>(
        &self,
        message: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let bar = if self.json {
            indicatif::ProgressBar::hidden()
        } else {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        let out = work.await;
        bar.finish_and_clear();
        out
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        json: cli.json,
        timeout: Duration::try_from_secs_f64(cli.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(5)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Cache(c) => cache::run(c, options).await,
            Command::Sessions(c) => sessions::run(c, options).await,
        }
    });
    match result {
        Ok(report) => {
            if options.json {
                println!("{}", report.json);
            } else {
                println!("{}", report.text);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let message = err.chain();
            if options.json {
                println!("{}", serde_json::json!({ "error": message }));
            }
            eprintln!("error: {message}");
            ExitCode::from(err.exit_code())
        }
    }
}
