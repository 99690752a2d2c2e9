//! covet-session
