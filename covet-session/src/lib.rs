//! HTTP sessions for tower and axum, re-exported by `covet` as
//! `covet::session`.
//!
//! This crate is the home of the session handle, the session stores and the
//! `SessionLayer`; it builds on `covet-cache` for its cache-backed store.
