//! PostgreSQL: the dialect and the queries of [`SqlStore`](super::SqlStore).

use sqlx::PgPool;

use super::statements::{Dialect, Statements, index_name, user_index_name};
use super::{Failure, merge};
use crate::store::Changes;

pub(super) const NAME: &str = "postgres";

fn statements(table: &str) -> Statements {
    let quoted = format!("\"{table}\"");
    let migrate = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (\
             storage_key VARCHAR(64) PRIMARY KEY, \
             data TEXT NOT NULL, \
             expires_at BIGINT NOT NULL, \
             user_id VARCHAR(255) NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted} (expires_at)",
            index_name(table)
        ),
        format!("ALTER TABLE {quoted} ADD COLUMN IF NOT EXISTS user_id VARCHAR(255) NULL"),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted} (user_id)",
            user_index_name(table)
        ),
    ];
    Statements::dml(
        &quoted,
        |n| format!("${n}"),
        " FOR UPDATE",
        migrate,
        Vec::new(),
    )
}

/// Deadlocks (`40P01`), serialization failures (`40001`) and lock timeouts
/// (`55P03`).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
        }
        _ => false,
    }
}

pub(super) const DIALECT: Dialect = Dialect {
    name: NAME,
    is_transient,
    statements,
};

queries!(PgPool, |pool| pool.begin());
