// `companions` takes a bool.
#[covet::cached(ttl = 60, companions = "no")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
