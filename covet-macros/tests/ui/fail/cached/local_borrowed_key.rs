// Without `key`, a local memo keys by the arguments: they must be owned.
#[covet::cached(local)]
async fn user(name: &str) -> u64 {
    name.len() as u64
}

fn main() {}
