#[covet::cached]
async fn area((width, height): (u32, u32)) -> u32 {
    width * height
}

fn main() {
    let _ = area((1, 2));
}
