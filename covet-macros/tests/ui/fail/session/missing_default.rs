#[covet::session_state(key = "cart")]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart { items: Vec::new() }.items;
}
