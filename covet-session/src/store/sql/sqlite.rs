//! SQLite: the dialect and the queries of [`SqlStore`](super::SqlStore).

use sqlx::SqlitePool;

use super::{Failure, Statements, index_name, merge};
use crate::store::Changes;

pub(super) const NAME: &str = "sqlite";

pub(super) fn statements(table: &str) -> Statements {
    let quoted = format!("\"{table}\"");
    let migrate = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (\
             storage_key TEXT PRIMARY KEY NOT NULL, \
             data TEXT NOT NULL, \
             expires_at INTEGER NOT NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{}\" ON {quoted} (expires_at)",
            index_name(table)
        ),
    ];
    // SQLite has no row locks: `save` takes the write lock up front with
    // `BEGIN IMMEDIATE` instead.
    Statements::dml(&quoted, |_| "?".to_owned(), "", migrate)
}

/// `SQLITE_BUSY` and `SQLITE_LOCKED`, with their extended codes (the
/// primary code is the low byte).
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

pub(super) async fn migrate(pool: &SqlitePool, sql: &Statements) -> sqlx::Result<()> {
    for statement in &sql.migrate {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// `false` if the key is taken.
pub(super) async fn insert(
    pool: &SqlitePool,
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
    pool: &SqlitePool,
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

/// Takes the write lock, merges `changes` into the live row and writes it
/// back; `false` if there is no live row.
pub(super) async fn save(
    pool: &SqlitePool,
    sql: &Statements,
    key: &str,
    now: i64,
    changes: &Changes,
    expires: i64,
) -> Result<bool, Failure> {
    // Writers serialize on the database lock, taken before the read.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
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
    pool: &SqlitePool,
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

pub(super) async fn delete(pool: &SqlitePool, sql: &Statements, key: &str) -> sqlx::Result<()> {
    sqlx::query(&sql.delete).bind(key).execute(pool).await?;
    Ok(())
}

pub(super) async fn delete_expired(
    pool: &SqlitePool,
    sql: &Statements,
    now: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(&sql.delete_expired)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
