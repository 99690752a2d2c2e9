// `max_bytes` weighs by `GetSize`; a value without it needs a `weigher`.
#[derive(Clone)]
struct Compiled(u64);

#[covet::cached(max_bytes = "1 MiB")]
fn compile(id: u64) -> Compiled {
    Compiled(id)
}

fn main() {}
