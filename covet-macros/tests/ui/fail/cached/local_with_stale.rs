// Stale serving is not available on a local memo yet.
#[covet::cached(ttl = 60, stale_while_revalidate = "30s")]
fn user(id: u64) -> u64 {
    id
}

fn main() {}
