// A local memo refreshes on another task too: the computation must be `Send`.
use std::rc::Rc;

#[covet::cached(local, ttl = 60, stale_while_revalidate = "30s")]
async fn user(id: u64) -> u64 {
    let local = Rc::new(id);
    tokio::task::yield_now().await;
    *local
}

fn main() {}
