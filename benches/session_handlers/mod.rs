//! The handlers the session benches put behind each layer: read a counter
//! from the session, store it plus one, answer the old value.

use http::StatusCode;

/// On covet's `Session`.
pub(crate) async fn covet(
    session: covet::session::Session,
) -> Result<String, covet::session::Error> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(n.to_string())
}

/// On tower-sessions' `Session`.
pub(crate) async fn tower(session: tower_sessions::Session) -> Result<String, StatusCode> {
    let n: u64 = session.get("n").await.map_err(internal)?.unwrap_or(0);
    session.insert("n", n + 1).await.map_err(internal)?;
    Ok(n.to_string())
}

/// Without sessions.
pub(crate) async fn plain() -> String {
    0u64.to_string()
}

pub(crate) fn internal<E>(_: E) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}
