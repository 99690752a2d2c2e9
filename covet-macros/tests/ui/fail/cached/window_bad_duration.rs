// Each duration option names itself in its errors.
#[covet::cached(ttl = 60, stale_while_revalidate = "soon")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
