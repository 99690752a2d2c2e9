// `lock` coordinates processes; a local memo has none to coordinate with.
#[covet::cached(local, lock)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
