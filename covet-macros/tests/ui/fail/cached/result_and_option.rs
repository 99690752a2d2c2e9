type Lookup = Result<u64, String>;

#[covet::cached(result, option)]
async fn get_user(user_id: u64) -> Lookup {
    Ok(user_id)
}

fn main() {
    let _ = get_user(1);
}
