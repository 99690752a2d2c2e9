#[covet::cached(key = "user:{usr_id}")]
async fn get_user(user_id: u64, name: &str) -> String {
    format!("{user_id}{name}")
}

fn main() {
    let _ = get_user(1, "a");
}
