//! `tags`: invalidate every entry of a tag at once.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use covet::cache::Cache;

static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .namespace(covet_test::unique_namespace("tags"))
        .build()
        .unwrap()
});

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Post {
    id: u32,
    author: u32,
}

#[covet::cached(key = "post:{post.id}", tags = ["author:{post.author}", "posts"], cache = CACHE)]
async fn render(post: &Post) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    format!("post {} by {}", post.id, post.author)
}

#[tokio::test]
async fn invalidate_by_tag() {
    let posts = [
        Post { id: 1, author: 7 },
        Post { id: 2, author: 7 },
        Post { id: 3, author: 8 },
    ];
    for p in &posts {
        render(p).await;
        render(p).await;
    }
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(CACHE.invalidate_tag("author:7").await.unwrap(), 2);
    for p in &posts {
        render(p).await;
    }
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        5,
        "only author 7's posts were recomputed"
    );
    assert_eq!(CACHE.invalidate_tag("posts").await.unwrap(), 3);
    assert_eq!(CACHE.invalidate_tag("posts").await.unwrap(), 0);
    render(&posts[2]).await;
    assert_eq!(CALLS.load(Ordering::SeqCst), 6);
}
