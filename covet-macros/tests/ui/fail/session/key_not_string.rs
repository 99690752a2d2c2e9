#[covet::session_state(key = 5)]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart::default().items;
}
