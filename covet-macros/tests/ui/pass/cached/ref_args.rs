#![deny(warnings)]
// Reference arguments (`&str`, `&T`, `&[T]`), explicit lifetimes, `mut`
// parameters, `impl Trait` with an explicit key.
use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize)]
struct User {
    id: u64,
}

#[covet::cached(key = "greet:{name}:{user.id}")]
async fn greet(name: &str, user: &User) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("hello {name} #{}", user.id)
}

#[covet::cached]
async fn pick<'a, T: Serialize + Display>(
    items: &'a [T],
    prefix: &'a str,
    mut index: usize,
) -> String {
    index %= items.len();
    format!("{prefix}{}", items[index])
}

#[covet::cached(key = "show:{value}")]
async fn show(value: impl Display + Send) -> String {
    value.to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let user = User { id: 9 };
    let name = String::from("ann");
    assert_eq!(greet(&name, &user).await, "hello ann #9");
    assert_eq!(greet("ann", &user).await, "hello ann #9");
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(greet_key("ann", &user), "greet:ann:9");

    let items = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(pick(&items, ">", 3).await, ">b");
    assert_eq!(pick(&items, ">", 3).await, ">b");
    assert_ne!(pick_key(&items, ">", 3), pick_key(&items, ">", 2));

    assert_eq!(show(5).await, "5");
    assert_eq!(show_key("x"), "show:x");
}
