// Duration options take seconds or a duration string.
#[covet::cached(ttl = 60, refresh_ahead = 1.5)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
