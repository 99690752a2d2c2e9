// Checks on the annotated type and on its session key.

use darling::Error;
use darling::error::Accumulator;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Ident, Item, LitStr};

// Keys under this prefix hold covet's own data (flash messages, ...).
const RESERVED_PREFIX: &str = "__covet";

// What `#[derive(SessionData)]` accepts: a struct without generic
// parameters. Returns whether the type has that shape.
pub(crate) fn check_derive_shape(input: &DeriveInput, errors: &mut Accumulator) -> bool {
    let mut ok = true;
    match &input.data {
        Data::Struct(_) => {}
        Data::Enum(data) => {
            ok = false;
            errors.push(
                Error::custom(
                    "`SessionData` can only be derived for a struct; wrap the enum in a struct",
                )
                .with_span(&data.enum_token),
            );
        }
        Data::Union(data) => {
            ok = false;
            errors.push(
                Error::custom("`SessionData` can only be derived for a struct")
                    .with_span(&data.union_token),
            );
        }
    }
    if let Some(param) = input.generics.params.first() {
        ok = false;
        errors.push(
            Error::custom(
                "`SessionData` cannot be derived for a generic type: every instantiation would \
                 share one session key",
            )
            .with_span(param),
        );
    }
    ok
}

// What `#[session_state]` accepts: a struct (the derive checks the rest).
pub(crate) fn check_item(item: &Item, errors: &mut Accumulator) -> bool {
    const MSG: &str = "#[session_state] can only be applied to a struct";
    let error = match item {
        Item::Struct(_) => return true,
        Item::Enum(item) => {
            Error::custom(format!("{MSG}; wrap the enum in a struct")).with_span(&item.enum_token)
        }
        Item::Union(item) => Error::custom(MSG).with_span(&item.union_token),
        Item::Fn(item) => Error::custom(MSG).with_span(&item.sig.fn_token),
        other => Error::custom(MSG).with_span(other),
    };
    errors.push(error);
    false
}

// The key the value is stored under: the `key = "..."` option, or the type's
// name in snake case, spanned on the name.
pub(crate) fn key(explicit: Option<&LitStr>, ident: &Ident, errors: &mut Accumulator) -> LitStr {
    let key = match explicit {
        Some(lit) => lit.clone(),
        None => LitStr::new(&snake_case(&ident.unraw().to_string()), ident.span()),
    };
    let value = key.value();
    if value.is_empty() {
        errors.push(Error::custom("the session key cannot be empty").with_span(&key));
    } else if value.starts_with(RESERVED_PREFIX) {
        errors.push(
            Error::custom(format!(
                "session keys starting with `{RESERVED_PREFIX}` are reserved for covet's own \
                 data; choose another key"
            ))
            .with_span(&key),
        );
    }
    key
}

// `ShoppingCart` -> `shopping_cart`, `HTTPState` -> `http_state`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) => {
                    p.is_lowercase() || p.is_ascii_digit() || (p.is_uppercase() && next_is_lower)
                }
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;
    use syn::parse_quote;

    fn errors_of(f: impl FnOnce(&mut Accumulator)) -> Vec<String> {
        let mut errors = Error::accumulator();
        f(&mut errors);
        errors
            .into_inner()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn snake_case_names() {
        for (name, key) in [
            ("Cart", "cart"),
            ("ShoppingCart", "shopping_cart"),
            ("HTTPState", "http_state"),
            ("UserID", "user_id"),
            ("Cart2", "cart2"),
            ("V2Cart", "v2_cart"),
            ("already_snake", "already_snake"),
            ("Mixed_Case", "mixed_case"),
            ("A", "a"),
        ] {
            assert_eq!(snake_case(name), key, "{name}");
        }
    }

    #[test]
    fn default_key_is_the_snake_case_name() {
        let ident: Ident = parse_quote!(ShoppingCart);
        let mut errors = Error::accumulator();
        assert_eq!(key(None, &ident, &mut errors).value(), "shopping_cart");
        let ident: Ident = parse_quote!(r#Type);
        assert_eq!(key(None, &ident, &mut errors).value(), "type");
        assert!(errors.finish().is_ok());
    }

    #[test]
    fn explicit_keys() {
        let ident: Ident = parse_quote!(Cart);
        let lit = LitStr::new("my-cart", Span::call_site());
        let errors = errors_of(|errors| {
            assert_eq!(key(Some(&lit), &ident, errors).value(), "my-cart");
        });
        assert!(errors.is_empty());
    }

    #[test]
    fn empty_and_reserved_keys() {
        let ident: Ident = parse_quote!(Cart);
        for (text, msg) in [
            ("", "cannot be empty"),
            ("__covet", "reserved"),
            ("__covet.cart", "reserved"),
        ] {
            let lit = LitStr::new(text, Span::call_site());
            let errors = errors_of(|errors| {
                key(Some(&lit), &ident, errors);
            });
            assert_eq!(errors.len(), 1, "{text}");
            assert!(errors[0].contains(msg), "{text}: {errors:?}");
        }
        // Only the prefix is reserved.
        let lit = LitStr::new("cart__covet", Span::call_site());
        assert!(
            errors_of(|errors| {
                key(Some(&lit), &ident, errors);
            })
            .is_empty()
        );
        // A default key is checked too.
        let ident: Ident = parse_quote!(__CovetCart);
        let errors = errors_of(|errors| {
            key(None, &ident, errors);
        });
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn derive_shapes() {
        let ok: DeriveInput = parse_quote!(
            struct Cart {
                items: Vec<u8>,
            }
        );
        assert!(errors_of(|e| assert!(check_derive_shape(&ok, e))).is_empty());
        let tuple: DeriveInput = parse_quote!(
            struct Count(u64);
        );
        assert!(errors_of(|e| assert!(check_derive_shape(&tuple, e))).is_empty());

        for (input, msg) in [
            (
                parse_quote!(
                    enum Cart {
                        A,
                    }
                ),
                "only be derived for a struct",
            ),
            (
                parse_quote!(
                    union Cart {
                        a: u8,
                    }
                ),
                "only be derived for a struct",
            ),
            (
                parse_quote!(
                    struct Cart<T> {
                        items: Vec<T>,
                    }
                ),
                "generic type",
            ),
            (
                parse_quote!(
                    struct Cart<'a> {
                        name: &'a str,
                    }
                ),
                "generic type",
            ),
        ] {
            let input: DeriveInput = input;
            let errors = errors_of(|e| assert!(!check_derive_shape(&input, e)));
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains(msg), "{errors:?}");
        }

        let both: DeriveInput = parse_quote!(
            enum Cart<T> {
                A(T),
            }
        );
        assert_eq!(
            errors_of(|e| {
                check_derive_shape(&both, e);
            })
            .len(),
            2
        );
    }

    #[test]
    fn session_state_items() {
        let ok: Item = parse_quote!(
            struct Cart;
        );
        assert!(errors_of(|e| assert!(check_item(&ok, e))).is_empty());
        for item in [
            parse_quote!(
                enum Cart {
                    A,
                }
            ),
            parse_quote!(
                union Cart {
                    a: u8,
                }
            ),
            parse_quote!(
                fn cart() {}
            ),
            parse_quote!(
                type Cart = u8;
            ),
        ] {
            let item: Item = item;
            let errors = errors_of(|e| assert!(!check_item(&item, e)));
            assert_eq!(errors.len(), 1);
            assert!(errors[0].starts_with("#[session_state] can only be applied to a struct"));
        }
    }
}
