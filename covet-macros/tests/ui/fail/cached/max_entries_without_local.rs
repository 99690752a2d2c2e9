// `max_entries` bounds a local memo only.
#[covet::cached(ttl = 60, max_entries = 100)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
