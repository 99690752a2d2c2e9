#[covet::cached]
async unsafe fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {
    let _ = unsafe { get_user(1) };
}
