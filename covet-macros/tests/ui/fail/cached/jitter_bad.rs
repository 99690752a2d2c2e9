// `jitter` is a percentage below 100.
#[covet::cached(ttl = 60, jitter = "150%")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
