//! PostgreSQL: the dialect and the queries of [`SqlStore`](super::SqlStore).

use sqlx::PgPool;

use super::{Failure, Statements, index_name, merge, user_index_name};
use crate::store::Changes;

pub(super) const NAME: &str = "postgres";

pub(super) fn statements(table: &str) -> Statements {
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
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
        }
        _ => false,
    }
}

queries!(PgPool, |pool| pool.begin());
