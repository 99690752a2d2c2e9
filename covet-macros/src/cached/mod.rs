// `#[cached]`: options (args), key templates (key), checks on the fn
// (validate), code generation (expand).

mod args;
mod expand;
mod key;
mod validate;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemFn;

use self::args::CachedArgs;
use self::key::{Kind, Template};

pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<ItemFn>(item.clone()) else {
        let error = syn::Error::new(
            Span::call_site(),
            "#[cached] can only be applied to a fn with a body",
        )
        .into_compile_error();
        return quote!(#item #error);
    };

    let mut errors = darling::Error::accumulator();
    let args = CachedArgs::parse(attr, &mut errors);
    let checked = validate::check(&func.sig, args.as_ref(), &mut errors);
    let names = checked.names();
    let mut key = None;
    let mut tags = Vec::new();
    if let Some(args) = &args {
        if let Some(lit) = &args.key {
            key = errors.handle(Template::parse(lit, Kind::Key, &names));
        }
        for lit in &args.tags {
            tags.extend(errors.handle(Template::parse(lit, Kind::Tag, &names)));
        }
    }

    match (errors.finish(), args) {
        (Ok(()), Some(args)) => expand::expand(&expand::Input {
            func,
            args: &args,
            checked,
            key,
            tags,
        }),
        // The fn is emitted unchanged beside the errors, so that its callers
        // do not fail too.
        (Err(errors), _) => {
            let errors = errors.write_errors();
            quote!(#item #errors)
        }
        (Ok(()), None) => unreachable!("option errors are accumulated"),
    }
}
