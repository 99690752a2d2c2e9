//! MySQL and MariaDB: the dialect and the queries of
//! [`SqlStore`](super::SqlStore).

use sqlx::MySqlPool;
use sqlx::mysql::MySqlDatabaseError;

use super::statements::{Dialect, Statements, index_name, user_index_name};
use super::{Failure, merge};
use crate::store::Changes;

pub(super) const NAME: &str = "mysql";

fn statements(table: &str) -> Statements {
    let quoted = format!("`{table}`");
    // MySQL has no `CREATE INDEX IF NOT EXISTS`: the index is created
    // with the table.
    let migrate = vec![format!(
        "CREATE TABLE IF NOT EXISTS {quoted} (\
         storage_key CHAR(64) CHARACTER SET ascii NOT NULL, \
         data LONGTEXT CHARACTER SET utf8mb4 NOT NULL, \
         expires_at BIGINT NOT NULL, \
         user_id VARCHAR(255) CHARACTER SET utf8mb4 NULL, \
         PRIMARY KEY (storage_key), \
         INDEX `{}` (expires_at), \
         INDEX `{}` (user_id))",
        index_name(table),
        user_index_name(table)
    )];
    // Tables made before user ids were kept: duplicate column and key
    // errors mean the upgrade happened.
    let upgrade = vec![format!(
        "ALTER TABLE {quoted} ADD COLUMN user_id VARCHAR(255) CHARACTER SET utf8mb4 NULL, \
         ADD INDEX `{}` (user_id)",
        user_index_name(table)
    )];
    Statements::dml(&quoted, |_| "?".to_owned(), " FOR UPDATE", migrate, upgrade)
}

/// Deadlocks (1213) and lock wait timeouts (1205).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1205 | 1213)),
        _ => false,
    }
}

pub(super) const DIALECT: Dialect = Dialect {
    name: NAME,
    is_transient,
    statements,
};

queries!(MySqlPool, |pool| pool.begin());
