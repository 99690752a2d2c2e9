//! Procedural macros of [covet](https://docs.rs/covet).
//!
//! Use them through the `covet` crate (`covet::cached`), which documents
//! them and provides the runtime their expansions call.

use proc_macro::TokenStream;

mod cached;
mod session;

/// Caches the results of an `async fn`.
///
/// See `covet::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached::cached(attr.into(), item.into()).into()
}

/// Implements `SessionData` for a struct: its values are stored under one
/// session key, by default the type's name in snake case.
///
/// See `covet::SessionData` for the documentation.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    session::derive(input.into()).into()
}

/// Declares a struct as typed session data: derives `Serialize`,
/// `Deserialize` and `SessionData`.
///
/// See `covet::session_state` for the documentation.
#[proc_macro_attribute]
pub fn session_state(attr: TokenStream, item: TokenStream) -> TokenStream {
    session::session_state(attr.into(), item.into()).into()
}
