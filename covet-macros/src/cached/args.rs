// Options of `#[cached(...)]`, parsed by darling.

use darling::ast::NestedMeta;
use darling::error::Accumulator;
use darling::util::Flag;
use darling::{Error, FromMeta};
use proc_macro2::TokenStream;
use syn::{Expr, Lit, LitStr, Path};

#[derive(Debug, FromMeta)]
pub(crate) struct CachedArgs {
    // Checked after darling, so that a bad TTL does not hide the errors of
    // the key template: see `parse`.
    #[darling(rename = "ttl")]
    ttl_lit: Option<Lit>,
    #[darling(skip)]
    pub(crate) ttl: Option<Ttl>,
    pub(crate) key: Option<LitStr>,
    pub(crate) cache: Option<Expr>,
    #[darling(default)]
    pub(crate) tags: Vec<LitStr>,
    pub(crate) result: Flag,
    pub(crate) option: Flag,
    // Cross-process single-flight through a lease in the shared backend.
    pub(crate) lock: Flag,
    #[darling(rename = "crate")]
    pub(crate) krate: Option<Path>,
}

impl CachedArgs {
    // Parses the tokens inside `#[cached(...)]`. Errors go to `errors`; the
    // options are returned whenever their shape is right, even if a value is
    // wrong, so that the later phases still report their own errors.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Accumulator) -> Option<Self> {
        let items = errors.handle(NestedMeta::parse_meta_list(tokens).map_err(Error::from))?;
        let mut args = errors.handle(Self::from_list(&items))?;
        if let Some(lit) = &args.ttl_lit {
            args.ttl = errors.handle(Ttl::from_lit(lit));
        }
        if args.result.is_present() && args.option.is_present() {
            errors.push(
                Error::custom(
                    "`result` and `option` cannot be used together: pick the one matching the \
                     return type",
                )
                .with_span(&args.option.span()),
            );
        }
        Some(args)
    }

    // `::covet`, or the `crate = "..."` override.
    pub(crate) fn root(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote::quote!(#path),
            None => quote::quote!(::covet),
        }
    }
}

// A TTL in milliseconds, written `ttl = 300` (seconds) or `ttl = "5m"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttl {
    pub(crate) millis: u64,
}

impl Ttl {
    fn from_lit(lit: &Lit) -> darling::Result<Self> {
        let millis = match lit {
            Lit::Int(int) => {
                let secs: u64 = int.base10_parse().map_err(|_| {
                    Error::custom("ttl must be a positive whole number of seconds").with_span(int)
                })?;
                secs.checked_mul(1000)
                    .ok_or_else(|| Error::custom("ttl is too large").with_span(int))?
            }
            Lit::Str(s) => {
                parse_duration(&s.value()).map_err(|msg| Error::custom(msg).with_span(s))?
            }
            other => return Err(Error::custom(TTL_SHAPE).with_span(other)),
        };
        if millis == 0 {
            return Err(Error::custom(
                "ttl must be greater than zero; leave `ttl` out to use the cache's default TTL",
            )
            .with_span(&lit.span()));
        }
        Ok(Ttl { millis })
    }
}

const TTL_SHAPE: &str = "expected `ttl = <seconds>` or a duration string such as `ttl = \"5m\"`";

// Units from largest to smallest; a duration string lists each at most once,
// in this order ("1h30m", not "30m1h").
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

// "90s", "5m", "1h30m", "250ms" -> milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let malformed = || {
        format!(
            "invalid ttl {text:?}: expected a duration such as \"90s\", \"5m\", \"1h30m\" or \
             \"250ms\" (units: d, h, m, s, ms)"
        )
    };
    let too_large = || format!("ttl {text:?} is too large");

    if text.is_empty() {
        return Err(malformed());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the next smallest unit still allowed.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(malformed());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(malformed());
        };
        if index < next_unit {
            return Err(format!(
                "invalid ttl {text:?}: write each unit once, largest first (d, h, m, s, ms)"
            ));
        }
        next_unit = index + 1;
        total = amount
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proc_macro2::Span;
    use quote::quote;

    pub(crate) fn parse(tokens: TokenStream) -> darling::Result<CachedArgs> {
        let mut errors = Error::accumulator();
        let args = CachedArgs::parse(tokens, &mut errors);
        errors.finish()?;
        Ok(args.expect("no errors"))
    }

    fn err(tokens: TokenStream) -> String {
        parse(tokens).unwrap_err().to_string()
    }

    #[test]
    fn empty_args_are_defaults() {
        let args = parse(quote!()).unwrap();
        assert!(args.ttl.is_none());
        assert!(args.key.is_none());
        assert!(args.cache.is_none());
        assert!(args.tags.is_empty());
        assert!(!args.result.is_present());
        assert!(!args.option.is_present());
        assert_eq!(args.root().to_string(), quote!(::covet).to_string());
    }

    #[test]
    fn ttl_integer_is_seconds() {
        let args = parse(quote!(ttl = 300)).unwrap();
        assert_eq!(args.ttl.unwrap().millis, 300_000);
    }

    #[test]
    fn ttl_strings() {
        for (text, millis) in [
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("250ms", 250),
            ("1h30m", 5_400_000),
            ("1d2h3m4s5ms", 93_784_005),
        ] {
            let lit = LitStr::new(text, Span::call_site());
            let args = parse(quote!(ttl = #lit)).unwrap();
            assert_eq!(args.ttl.unwrap().millis, millis, "{text}");
        }
    }

    #[test]
    fn ttl_zero_is_an_error() {
        assert!(err(quote!(ttl = 0)).contains("greater than zero"));
        assert!(err(quote!(ttl = "0s")).contains("greater than zero"));
        assert!(err(quote!(ttl = "0h0m")).contains("greater than zero"));
    }

    #[test]
    fn ttl_malformed_strings() {
        for text in [
            "", "5", "5x", "m", "1.5h", "1h 30m", " 5m", "5M", "-5s", "5mm",
        ] {
            let lit = LitStr::new(text, Span::call_site());
            let msg = err(quote!(ttl = #lit));
            assert!(msg.contains("invalid ttl"), "{text}: {msg}");
        }
    }

    #[test]
    fn ttl_units_in_order_once() {
        assert!(err(quote!(ttl = "30m1h")).contains("largest first"));
        assert!(err(quote!(ttl = "1m1m")).contains("largest first"));
    }

    #[test]
    fn ttl_overflow() {
        assert!(err(quote!(ttl = 18446744073709551615)).contains("too large"));
        assert!(err(quote!(ttl = "99999999999999999999d")).contains("too large"));
        assert!(err(quote!(ttl = "999999999999999999d")).contains("too large"));
    }

    #[test]
    fn ttl_wrong_shapes() {
        assert!(err(quote!(ttl = 1.5)).contains("expected `ttl = <seconds>`"));
        let msg = err(quote!(ttl = -5));
        assert!(msg.contains("positive whole number of seconds"), "{msg}");
        assert!(err(quote!(ttl = true)).contains("expected `ttl = <seconds>`"));
    }

    #[test]
    fn key_cache_tags_crate() {
        let args = parse(quote!(
            key = "user:{user_id}",
            cache = self.cache,
            tags = ["u:{user_id}", "all"],
            crate = "my_covet"
        ))
        .unwrap();
        assert_eq!(args.key.unwrap().value(), "user:{user_id}");
        let cache = args.cache.unwrap();
        assert_eq!(quote!(#cache).to_string(), quote!(self.cache).to_string());
        let tags: Vec<String> = args.tags.iter().map(LitStr::value).collect();
        assert_eq!(tags, ["u:{user_id}", "all"]);
        let root = parse(quote!(crate = "my_covet::inner")).unwrap().root();
        assert_eq!(root.to_string(), quote!(my_covet::inner).to_string());
    }

    #[test]
    fn cache_static_path() {
        let args = parse(quote!(cache = CACHE)).unwrap();
        let cache = args.cache.unwrap();
        assert_eq!(quote!(#cache).to_string(), "CACHE");
    }

    #[test]
    fn flags() {
        let args = parse(quote!(result)).unwrap();
        assert!(args.result.is_present() && !args.option.is_present());
        let args = parse(quote!(option)).unwrap();
        assert!(args.option.is_present() && !args.result.is_present());
    }

    #[test]
    fn both_flags_are_an_error() {
        assert!(err(quote!(result, option)).contains("cannot be used together"));
    }

    #[test]
    fn unknown_and_duplicate_options() {
        assert!(
            err(quote!(tll = 5))
                .to_lowercase()
                .contains("unknown field")
        );
        assert!(
            err(quote!(ttl = 5, ttl = 6))
                .to_lowercase()
                .contains("duplicate")
        );
    }

    #[test]
    fn several_errors_are_all_reported() {
        let e = parse(quote!(ttl = 0, result, option)).unwrap_err();
        assert_eq!(e.len(), 2);
        // darling accumulates its own errors too.
        let e = parse(quote!(bogus = 1, key = 5)).unwrap_err();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn a_bad_ttl_keeps_the_other_options() {
        let mut errors = Error::accumulator();
        let args = CachedArgs::parse(
            quote!(ttl = "soon", key = "k:{x}", result, option),
            &mut errors,
        );
        let args = args.expect("the shape is right");
        assert!(args.ttl.is_none());
        assert_eq!(args.key.unwrap().value(), "k:{x}");
        assert_eq!(errors.into_inner().len(), 2);
    }

    #[test]
    fn ttl_must_be_a_literal() {
        assert!(parse(quote!(ttl = SOME_CONST)).is_err());
    }

    #[test]
    fn key_must_be_a_string() {
        assert!(parse(quote!(key = 5)).is_err());
    }
}
