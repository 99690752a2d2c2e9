// `cache_err` needs a fn returning `Result`.
#[covet::cached(ttl = 60, cache_err = "5s")]
async fn find(x: u64) -> Option<u64> {
    Some(x)
}

fn main() {}
