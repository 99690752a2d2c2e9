//! Procedural macros of [covet](https://docs.rs/covet).
//!
//! Use them through the `covet` crate (`covet::cached`), which documents
//! them and provides the runtime their expansions call.

use proc_macro::TokenStream;

mod cached;

/// Caches the results of an `async fn`.
///
/// See `covet::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    cached::cached(attr.into(), item.into()).into()
}
