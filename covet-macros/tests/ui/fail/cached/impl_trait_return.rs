#[covet::cached]
async fn names(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

fn main() {
    let _ = names(1);
}
