use covet::session::SessionData;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize, SessionData)]
enum Theme {
    #[default]
    Light,
    Dark,
}

fn main() {
    let _ = (Theme::Light, Theme::Dark);
}
