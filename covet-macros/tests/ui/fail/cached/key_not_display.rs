// Placeholders are written with `Display`.
struct UserId(u64);

#[covet::cached(key = "user:{user_id}")]
async fn get_user(user_id: UserId) -> u64 {
    user_id.0
}

fn main() {
    let _ = get_user(UserId(1));
}
