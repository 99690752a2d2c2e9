// `max_bytes` and `weigher` bound a local memo only.
#[covet::cached(ttl = 60, max_bytes = "1 MiB")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
