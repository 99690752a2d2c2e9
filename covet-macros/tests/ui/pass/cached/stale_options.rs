#![deny(warnings)]
// `stale_while_revalidate`, `stale_if_error`, `refresh_ahead`, `jitter`, with
// owned arguments (refreshed on a spawned task) and on a method (refreshed in
// the call).
#[covet::cached(
    ttl = 60,
    stale_while_revalidate = "30s",
    stale_if_error = "5m",
    refresh_ahead = 10,
    jitter = "10%"
)]
async fn rate(currency: String) -> Result<f64, std::io::Error> {
    Ok(currency.len() as f64)
}

struct Repo;

impl Repo {
    #[covet::cached(ttl = "1m", stale_while_revalidate = "30s", lock)]
    async fn name(&self, id: &str) -> Option<String> {
        Some(id.to_uppercase())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(rate("EUR".into()).await.unwrap(), 3.0);
    assert_eq!(Repo.name("ab").await.as_deref(), Some("AB"));
}
