// `cache_none` is a flag or a TTL.
#[covet::cached(ttl = 60, cache_none = true)]
async fn user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
