#[covet::session_state]
#[derive(Default)]
enum Theme {
    #[default]
    Light,
    Dark,
}

fn main() {
    let _ = (Theme::Light, Theme::Dark);
}
