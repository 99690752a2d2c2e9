// A local memo has one bound; a weigher needs `max_bytes`.
#[covet::cached(max_entries = 100, max_bytes = "1 MiB")]
fn user(id: u64) -> u64 {
    id
}

fn weigh(v: &u64) -> usize {
    *v as usize
}

#[covet::cached(weigher = weigh)]
fn other(id: u64) -> u64 {
    id
}

fn main() {}
