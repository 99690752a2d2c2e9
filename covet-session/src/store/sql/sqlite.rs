//! SQLite: the dialect and the queries of [`SqlStore`](super::SqlStore).

use sqlx::SqlitePool;

use super::statements::{Dialect, Statements, index_name, user_index_name};
use super::{Failure, merge};
use crate::store::Changes;

pub(super) const NAME: &str = "sqlite";

fn statements(table: &str) -> Statements {
    let quoted = format!("\"{table}\"");
    let migrate = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (\
             storage_key TEXT PRIMARY KEY NOT NULL, \
             data TEXT NOT NULL, \
             expires_at INTEGER NOT NULL, \
             user_id TEXT NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted} (expires_at)",
            index_name(table)
        ),
    ];
    // Tables made before user ids were kept: "duplicate column" means the
    // upgrade happened.
    let upgrade = vec![
        format!("ALTER TABLE {quoted} ADD COLUMN user_id TEXT NULL"),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted} (user_id)",
            user_index_name(table)
        ),
    ];
    // SQLite has no row locks: `save` takes the write lock up front with
    // `BEGIN IMMEDIATE` instead.
    Statements::dml(&quoted, |_| "?".to_owned(), "", migrate, upgrade)
}

/// `SQLITE_BUSY` and `SQLITE_LOCKED`, with their extended codes (the
/// primary code is the low byte).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

// `save` takes the write lock before it reads: writers serialize on the
// database lock.
pub(super) const DIALECT: Dialect = Dialect {
    name: NAME,
    is_transient,
    statements,
};

queries!(SqlitePool, |pool| pool.begin_with("BEGIN IMMEDIATE"));
