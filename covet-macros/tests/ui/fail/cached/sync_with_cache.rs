// A sync fn is memoized in process: it cannot name a shared cache.
static CACHE: std::sync::LazyLock<covet::cache::Cache> =
    std::sync::LazyLock::new(covet::cache::Cache::memory);

#[covet::cached(ttl = 60, cache = CACHE)]
fn user(id: u64) -> u64 {
    id
}

fn main() {}
