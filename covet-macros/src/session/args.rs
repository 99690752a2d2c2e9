// Options of `#[session(...)]` (read by `#[derive(SessionData)]`) and of
// `#[session_state(...)]`, parsed by darling. Both take the same options:
// `#[session_state]` forwards them to the derive.

use darling::ast::NestedMeta;
use darling::error::Accumulator;
use darling::{Error, FromDeriveInput, FromMeta};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, Expr, ExprLit, Lit, LitStr, Meta, Path};

#[derive(Debug, FromMeta)]
pub(crate) struct SessionArgs {
    #[darling(default, with = key_string)]
    pub(crate) key: Option<LitStr>,
    // The path of the session runtime (`::covet::session`), as serde's
    // `crate = "..."`.
    #[darling(rename = "crate")]
    pub(crate) krate: Option<Path>,
}

// The derive's view: every `#[session(...)]` attribute on the type.
#[derive(Debug, FromDeriveInput)]
#[darling(attributes(session))]
struct DeriveArgs {
    #[darling(flatten)]
    args: SessionArgs,
}

// `key = "..."`, with an error that shows the expected form.
fn key_string(meta: &Meta) -> darling::Result<Option<LitStr>> {
    const SHAPE: &str = "expected a string: `key = \"cart\"`";
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => Ok(Some(lit.clone())),
            other => Err(Error::custom(SHAPE).with_span(other)),
        },
        other => Err(Error::custom(SHAPE).with_span(other)),
    }
}

impl SessionArgs {
    // The tokens inside `#[session_state(...)]`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Accumulator) -> Option<Self> {
        let items = errors.handle(NestedMeta::parse_meta_list(tokens).map_err(Error::from))?;
        errors.handle(Self::from_list(&items))
    }

    // The `#[session(...)]` attributes of a derive input.
    pub(crate) fn from_derive(input: &DeriveInput, errors: &mut Accumulator) -> Option<Self> {
        errors
            .handle(DeriveArgs::from_derive_input(input))
            .map(|derive| derive.args)
    }

    // `::covet::session`, or the `crate = "..."` override.
    pub(crate) fn root(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote!(#path),
            None => quote!(::covet::session),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn attr(tokens: TokenStream) -> darling::Result<SessionArgs> {
        let mut errors = Error::accumulator();
        let args = SessionArgs::parse(tokens, &mut errors);
        errors.finish()?;
        Ok(args.expect("no errors"))
    }

    fn derive(input: DeriveInput) -> darling::Result<SessionArgs> {
        let mut errors = Error::accumulator();
        let args = SessionArgs::from_derive(&input, &mut errors);
        errors.finish()?;
        Ok(args.expect("no errors"))
    }

    #[test]
    fn no_options() {
        let args = attr(quote!()).unwrap();
        assert!(args.key.is_none() && args.krate.is_none());
        assert_eq!(
            args.root().to_string(),
            quote!(::covet::session).to_string()
        );
        let args = derive(parse_quote!(
            struct Cart;
        ))
        .unwrap();
        assert!(args.key.is_none() && args.krate.is_none());
    }

    #[test]
    fn key_and_crate() {
        let args = attr(quote!(key = "cart", crate = "my::session")).unwrap();
        assert_eq!(args.key.as_ref().unwrap().value(), "cart");
        assert_eq!(args.root().to_string(), quote!(my::session).to_string());

        let args = derive(parse_quote!(
            #[session(key = "cart")]
            #[session(crate = "::covet_session")]
            struct Cart;
        ))
        .unwrap();
        assert_eq!(args.key.as_ref().unwrap().value(), "cart");
        assert_eq!(args.root().to_string(), quote!(::covet_session).to_string());
    }

    #[test]
    fn other_attributes_are_ignored() {
        let args = derive(parse_quote!(
            #[derive(Default)]
            #[serde(rename_all = "camelCase")]
            #[session(key = "k")]
            struct Cart {
                #[serde(default)]
                items: Vec<u8>,
            }
        ))
        .unwrap();
        assert_eq!(args.key.unwrap().value(), "k");
    }

    #[test]
    fn unknown_options() {
        let msg = attr(quote!(kye = "cart")).unwrap_err().to_string();
        assert!(msg.to_lowercase().contains("unknown field"), "{msg}");
        let err = derive(parse_quote!(
            #[session(ttl = 5)]
            struct Cart;
        ))
        .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("unknown field"));
    }

    #[test]
    fn key_must_be_a_string() {
        for tokens in [
            quote!(key = 5),
            quote!(key = cart),
            quote!(key),
            quote!(key("a")),
        ] {
            let msg = attr(tokens).unwrap_err().to_string();
            assert!(msg.contains("expected a string"), "{msg}");
        }
        assert!(
            derive(parse_quote!(
                #[session(key = 5)]
                struct Cart;
            ))
            .is_err()
        );
    }

    #[test]
    fn crate_must_be_a_path_string() {
        assert!(attr(quote!(crate = "not a path")).is_err());
        assert!(attr(quote!(crate = 5)).is_err());
    }

    #[test]
    fn duplicates_are_errors() {
        let msg = attr(quote!(key = "a", key = "b")).unwrap_err().to_string();
        assert!(msg.to_lowercase().contains("duplicate"), "{msg}");
        let err = derive(parse_quote!(
            #[session(key = "a")]
            #[session(key = "b")]
            struct Cart;
        ))
        .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("duplicate"));
    }

    #[test]
    fn all_errors_are_reported() {
        let err = attr(quote!(bogus = 1, key = 5)).unwrap_err();
        assert_eq!(err.len(), 2);
    }
}
