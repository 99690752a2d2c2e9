// All errors are reported at once, each on its own token.
#[covet::cached(ttl = "soon", key = "user:{usr}", tags = ["{x:?}"])]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {
    let _ = get_user(1);
}
