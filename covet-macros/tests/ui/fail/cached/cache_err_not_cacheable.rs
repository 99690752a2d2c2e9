// `cache_err` stores the error: it must be cacheable.
#[derive(Debug)]
struct DbError;

#[covet::cached(ttl = 60, cache_err)]
async fn load(id: u64) -> Result<u64, DbError> {
    if id == 0 { Err(DbError) } else { Ok(id) }
}

fn main() {}
