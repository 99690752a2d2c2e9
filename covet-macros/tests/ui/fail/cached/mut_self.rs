struct Repo {
    hits: u64,
}

impl Repo {
    #[covet::cached]
    async fn get_user(&mut self, user_id: u64) -> u64 {
        self.hits += 1;
        user_id
    }
}

fn main() {
    let mut repo = Repo { hits: 0 };
    let _ = repo.get_user(1);
}
