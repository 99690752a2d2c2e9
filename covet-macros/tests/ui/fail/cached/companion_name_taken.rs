// A companion (`user_key`) whose name is already taken: the error points at
// the attribute; `companions = false` is the way out.
fn user_key(id: u64) -> String {
    format!("u{id}")
}

#[covet::cached(ttl = 60)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {
    let _ = user_key(1);
}
