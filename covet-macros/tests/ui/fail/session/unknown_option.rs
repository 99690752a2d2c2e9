#[covet::session_state(kye = "cart")]
#[derive(Default)]
struct Cart {
    items: Vec<String>,
}

fn main() {
    let _ = Cart::default().items;
}
