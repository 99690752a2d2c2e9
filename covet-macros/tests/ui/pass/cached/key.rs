#![deny(warnings)]
// `key = "user:{user_id}"`, and the three companions.
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

/// Loads a user.
#[covet::cached(ttl = 300, key = "user:{user_id}")]
pub async fn get_user(user_id: u64) -> Result<User, DbError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(User {
        id: user_id,
        name: format!("user {user_id}"),
    })
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(get_user_key(7), "user:7");
    let fut = get_user(7);
    assert_send(&fut);
    let user = fut.await.unwrap();
    assert_eq!(user.name, "user 7");
    assert_eq!(get_user(7).await.unwrap(), user);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);

    // Stored under the user key in the default cache.
    let cache = covet::cache::default_cache();
    let stored: Option<User> = cache.get(&get_user_key(7)).await.unwrap();
    assert_eq!(stored, Some(user.clone()));

    // `_refresh` always runs the body.
    assert_eq!(get_user_refresh(7).await.unwrap(), user);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);

    // `_invalidate` removes the entry once.
    assert!(get_user_invalidate(7).await.unwrap());
    assert!(!get_user_invalidate(7).await.unwrap());
    get_user(7).await.unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
}
