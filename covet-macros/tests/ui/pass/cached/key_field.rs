#![deny(warnings)]
// `{name.field}` placeholders, field chains, tuple fields and `{{ }}` escapes.
use std::sync::atomic::{AtomicUsize, Ordering};

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct Owner {
    name: String,
}

struct Team {
    id: u32,
    owner: Owner,
}

#[covet::cached(key = "{{team}}:{team.id}:{team.owner.name}:{pair.1}")]
async fn team_size(team: &Team, pair: (u8, u16)) -> usize {
    CALLS.fetch_add(1, Ordering::SeqCst);
    team.owner.name.len() + usize::from(pair.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let team = Team {
        id: 4,
        owner: Owner {
            name: "ann".to_owned(),
        },
    };
    assert_eq!(team_size_key(&team, (1, 9)), concat!("{", "team}:4:ann:9"));
    assert_eq!(team_size(&team, (1, 9)).await, 4);
    // Same key: the cached value, even though `pair.0` differs.
    assert_eq!(team_size(&team, (2, 9)).await, 4);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
}
