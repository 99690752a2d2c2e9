#[covet::cached(ttl = 18446744073709551615)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {
    let _ = get_user(1);
}
