// `cache_none` needs a fn returning `Option`.
#[covet::cached(ttl = 60, cache_none)]
async fn count(x: u64) -> u64 {
    x
}

fn main() {}
