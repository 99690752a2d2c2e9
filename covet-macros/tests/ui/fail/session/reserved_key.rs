#[covet::session_state(key = "__covet.cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart::default().items;
}
