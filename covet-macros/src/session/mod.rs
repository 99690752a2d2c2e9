// `#[derive(SessionData)]` and `#[session_state]`: options (args), checks on
// the type and its key (validate), code generation (expand).

mod args;
mod expand;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Item};

use self::args::SessionArgs;

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(err) => return err.into_compile_error(),
    };
    let mut errors = darling::Error::accumulator();
    let args = SessionArgs::from_derive(&input, &mut errors);
    let shape_ok = validate::check_derive_shape(&input, &mut errors);
    let key = args
        .as_ref()
        .map(|args| validate::key(args.key.as_ref(), &input.ident, &mut errors));

    // The impl is emitted beside the errors whenever the type allows it (a
    // bad key only), so that uses of the type do not fail too.
    let item = match (&args, key) {
        (Some(args), Some(key)) if shape_ok => expand::derive(&input.ident, &args.root(), &key),
        _ => TokenStream::new(),
    };
    let errors = errors.finish().err().map(darling::Error::write_errors);
    quote!(#item #errors)
}

pub(crate) fn session_state(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = darling::Error::accumulator();
    let args = SessionArgs::parse(attr, &mut errors);
    let parsed = errors.handle(syn::parse2::<Item>(item.clone()).map_err(darling::Error::from));
    let is_struct = parsed
        .as_ref()
        .is_some_and(|parsed| validate::check_item(parsed, &mut errors));

    match (errors.finish(), args, parsed) {
        (Ok(()), Some(args), Some(Item::Struct(item))) if is_struct => {
            expand::session_state(&item, &args)
        }
        // The item is emitted unchanged beside the errors.
        (Err(errors), ..) => {
            let errors = errors.write_errors();
            quote!(#item #errors)
        }
        (Ok(()), ..) => unreachable!("errors are accumulated"),
    }
}
