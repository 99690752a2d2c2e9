#[covet::cached(key = "user:{0}")]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {
    let _ = get_user(1);
}
