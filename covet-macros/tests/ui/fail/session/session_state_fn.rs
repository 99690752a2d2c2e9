#[covet::session_state(key = "cart")]
fn cart() -> Vec<String> {
    Vec::new()
}

fn main() {
    let _ = cart();
}
