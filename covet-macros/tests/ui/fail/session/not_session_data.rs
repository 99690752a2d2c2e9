use covet::session::SessionState;

#[derive(Default)]
struct Plain {
    items: Vec<String>,
}

fn show(_cart: &SessionState<Plain>) {}

fn main() {
    let _ = (show, Plain::default().items);
}
