use std::fmt::Display;

#[covet::cached]
async fn show(id: u64, value: impl Display) -> String {
    format!("{id}:{value}")
}

fn main() {
    let _ = show(1, "x");
}
