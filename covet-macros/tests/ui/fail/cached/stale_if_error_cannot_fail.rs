// `stale_if_error` on a fn that cannot fail.
#[covet::cached(ttl = 60, stale_if_error = "5m")]
async fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
