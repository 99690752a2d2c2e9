// `ttl = CONST` takes a `Duration` or whole seconds.
const USER_TTL: f64 = 1.5;

#[covet::cached(ttl = USER_TTL)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
