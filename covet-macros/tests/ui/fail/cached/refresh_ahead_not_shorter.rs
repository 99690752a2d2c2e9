// `refresh_ahead` must leave some fresh life before it.
#[covet::cached(ttl = 60, refresh_ahead = "1m")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
