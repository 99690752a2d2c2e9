// The return value must be serializable.
struct User {
    id: u64,
}

#[covet::cached(key = "user:{user_id}")]
async fn get_user(user_id: u64) -> Option<User> {
    Some(User { id: user_id })
}

fn main() {
    let _ = get_user(1);
}
