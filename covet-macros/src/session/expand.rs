// Code generation: the `SessionData` impl, and the attributes
// `#[session_state]` puts on the struct.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemStruct, LitStr};

use super::args::SessionArgs;

// `Default` is checked by a separate assertion spanned on the type's name,
// whose message says to derive it. The impl's `for<'__covet>` bound holds
// exactly when the type implements `Default`, and keeps rustc from
// reporting the missing supertrait a second time at the impl.
pub(crate) fn derive(ident: &Ident, root: &TokenStream, key: &LitStr) -> TokenStream {
    let private = quote!(#root::__private);
    let assert_default = quote_spanned! {ident.span()=>
        #private::assert_default((&#private::DefaultCheck::<#ident>::new()).probe())
    };
    quote! {
        #[automatically_derived]
        impl #root::SessionData for #ident
        where
            for<'__covet> #ident: ::core::default::Default,
        {
            const KEY: &'static str = #key;
        }

        const _: () = {
            #[allow(unused_imports)]
            use #private::{ViaDefault as _, ViaFallback as _};
            #[allow(dead_code)]
            fn __covet_assert_default() {
                #assert_default;
            }
        };
    }
}

// `#[session_state]`: serde's derives through the runtime's re-export of
// serde (users need no serde dependency), and `SessionData` with the
// options forwarded. Derives come first so that the helper attributes they
// introduce follow them.
pub(crate) fn session_state(item: &ItemStruct, args: &SessionArgs) -> TokenStream {
    let root = args.root();
    let serde = quote!(#root::__private::serde);
    let serde_path = LitStr::new(&serde.to_string(), Span::call_site());
    let mut options = Vec::new();
    if let Some(key) = &args.key {
        options.push(quote!(key = #key));
    }
    if let Some(path) = &args.krate {
        let path = LitStr::new(&quote!(#path).to_string(), path.span());
        options.push(quote!(crate = #path));
    }
    let session = (!options.is_empty()).then(|| quote!(#[session(#(#options),*)]));
    quote! {
        #[derive(#serde::Serialize, #serde::Deserialize, #root::SessionData)]
        #[serde(crate = #serde_path)]
        #session
        #item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;
    use syn::parse_quote;

    #[test]
    fn derive_impl() {
        let tokens = derive(
            &parse_quote!(Cart),
            &quote!(::covet::session),
            &parse_quote!("cart"),
        );
        let expected = quote! {
            #[automatically_derived]
            impl ::covet::session::SessionData for Cart
            where
                for<'__covet> Cart: ::core::default::Default,
            {
                const KEY: &'static str = "cart";
            }
        };
        let text = tokens.to_string();
        assert!(text.starts_with(&expected.to_string()), "{text}");
        let check = quote!(::covet::session::__private::DefaultCheck::<Cart>::new()).to_string();
        assert!(text.contains(&check), "{text}");
    }

    #[test]
    fn session_state_forwards_the_options() {
        let item: ItemStruct = parse_quote!(
            struct Cart {
                items: Vec<u8>,
            }
        );
        let args: SessionArgs = darling::FromMeta::from_list(&[
            parse_quote!(key = "cart"),
            parse_quote!(crate = "my::session"),
        ])
        .unwrap();
        let expected = quote! {
            #[derive(
                my::session::__private::serde::Serialize,
                my::session::__private::serde::Deserialize,
                my::session::SessionData
            )]
            #[serde(crate = "my :: session :: __private :: serde")]
            #[session(key = "cart", crate = "my :: session")]
            struct Cart {
                items: Vec<u8>,
            }
        };
        assert_eq!(
            session_state(&item, &args).to_string(),
            expected.to_string()
        );
    }

    #[test]
    fn session_state_without_options() {
        let item: ItemStruct = parse_quote!(
            struct Cart;
        );
        let args: SessionArgs = darling::FromMeta::from_list(&[]).unwrap();
        let expected = quote! {
            #[derive(
                ::covet::session::__private::serde::Serialize,
                ::covet::session::__private::serde::Deserialize,
                ::covet::session::SessionData
            )]
            #[serde(crate = ":: covet :: session :: __private :: serde")]
            struct Cart;
        };
        assert_eq!(
            session_state(&item, &args).to_string(),
            expected.to_string()
        );
    }
}
