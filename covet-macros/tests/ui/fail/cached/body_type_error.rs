// A type error in the body is reported once, on the user's code.
#[covet::cached(key = "user:{user_id}")]
async fn get_user(user_id: u64) -> String {
    user_id
}

fn main() {
    let _ = get_user(1);
}
