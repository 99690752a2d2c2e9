// `max_entries` must be above zero.
#[covet::cached(local, max_entries = 0)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
