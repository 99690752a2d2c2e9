// One typed store per fn: a local memo cannot be generic.
#[covet::cached]
fn size<T: Clone + std::hash::Hash + Eq + Send + Sync + 'static>(value: T) -> usize {
    std::mem::size_of_val(&value)
}

fn main() {}
