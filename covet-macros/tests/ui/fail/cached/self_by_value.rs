struct Repo;

impl Repo {
    #[covet::cached]
    async fn get_user(self, user_id: u64) -> u64 {
        user_id
    }
}

fn main() {
    let _ = Repo.get_user(1);
}
