//! MySQL and MariaDB: the dialect and the queries of
//! [`SqlStore`](super::SqlStore).

use sqlx::MySqlPool;
use sqlx::mysql::MySqlDatabaseError;

use super::{Failure, Statements, index_name, merge};
use crate::store::Changes;

pub(super) const NAME: &str = "mysql";

pub(super) fn statements(table: &str) -> Statements {
    let quoted = format!("`{table}`");
    // MySQL has no `CREATE INDEX IF NOT EXISTS`: the index is created
    // with the table.
    let migrate = vec![format!(
        "CREATE TABLE IF NOT EXISTS {quoted} (\
         storage_key CHAR(64) CHARACTER SET ascii NOT NULL, \
         data LONGTEXT CHARACTER SET utf8mb4 NOT NULL, \
         expires_at BIGINT NOT NULL, \
         PRIMARY KEY (storage_key), \
         INDEX `{}` (expires_at))",
        index_name(table)
    )];
    Statements::dml(&quoted, |_| "?".to_owned(), " FOR UPDATE", migrate)
}

/// Deadlocks (1213) and lock wait timeouts (1205).
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1205 | 1213)),
        _ => false,
    }
}

pub(super) async fn migrate(pool: &MySqlPool, sql: &Statements) -> sqlx::Result<()> {
    for statement in &sql.migrate {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// `false` if the key is taken.
pub(super) async fn insert(
    pool: &MySqlPool,
    sql: &Statements,
    key: &str,
    data: &str,
    expires: i64,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(&sql.insert)
        .bind(key)
        .bind(data)
        .bind(expires)
        .execute(pool)
        .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) async fn load(
    pool: &MySqlPool,
    sql: &Statements,
    key: &str,
    now: i64,
) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as(&sql.load)
        .bind(key)
        .bind(now)
        .fetch_optional(pool)
        .await
}

/// Locks the live row, merges `changes` into it and writes it back;
/// `false` if there is no live row.
pub(super) async fn save(
    pool: &MySqlPool,
    sql: &Statements,
    key: &str,
    now: i64,
    changes: &Changes,
    expires: i64,
) -> Result<bool, Failure> {
    let mut tx = pool.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(&sql.lock)
        .bind(key)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((text,)) = row else {
        tx.rollback().await?;
        return Ok(false);
    };
    let data = merge(NAME, &text, changes)?;
    sqlx::query(&sql.update)
        .bind(data)
        .bind(expires)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn touch(
    pool: &MySqlPool,
    sql: &Statements,
    expires: i64,
    key: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(&sql.touch)
        .bind(expires)
        .bind(key)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn delete(pool: &MySqlPool, sql: &Statements, key: &str) -> sqlx::Result<()> {
    sqlx::query(&sql.delete).bind(key).execute(pool).await?;
    Ok(())
}

pub(super) async fn delete_expired(
    pool: &MySqlPool,
    sql: &Statements,
    now: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(&sql.delete_expired)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
