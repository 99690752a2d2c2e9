// Options of `#[cached(...)]`, parsed by darling.

use darling::ast::NestedMeta;
use darling::error::Accumulator;
use darling::util::{Flag, SpannedValue};
use darling::{Error, FromMeta};
use proc_macro2::Span;
use proc_macro2::TokenStream;
use syn::{Expr, ExprLit, Lit, LitStr, Path};

#[derive(Debug, FromMeta)]
pub(crate) struct CachedArgs {
    // A bad TTL is reported after darling, so that it does not hide the
    // errors of the key template: see `parse`.
    pub(crate) ttl: Option<TtlArg>,
    pub(crate) key: Option<LitStr>,
    pub(crate) cache: Option<Expr>,
    #[darling(default)]
    pub(crate) tags: Vec<LitStr>,
    pub(crate) result: Flag,
    pub(crate) option: Flag,
    // Cross-process single-flight through a lease in the shared backend.
    pub(crate) lock: Flag,
    pub(crate) stale_while_revalidate: Option<StaleWhileRevalidate>,
    pub(crate) stale_if_error: Option<SpannedValue<StaleIfError>>,
    pub(crate) refresh_ahead: Option<RefreshAhead>,
    pub(crate) cache_none: Option<SpannedValue<Negative>>,
    pub(crate) cache_err: Option<SpannedValue<Negative>>,
    pub(crate) value_ttl: Option<Path>,
    pub(crate) jitter: Option<Jitter>,
    pub(crate) companions: Option<Companions>,
    // A typed per-fn memo in this process (implied for sync fns).
    pub(crate) local: Flag,
    pub(crate) max_entries: Option<SpannedValue<MaxEntries>>,
    pub(crate) max_bytes: Option<SpannedValue<MaxBytes>>,
    // Weighs a value for `max_bytes` (`fn(&V) -> usize`).
    pub(crate) weigher: Option<Path>,
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
        if let Some(TtlArg::Bad(err)) = &args.ttl {
            errors.push(err.clone());
            args.ttl = None;
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
        if let (Some(ahead), Some(TtlArg::Millis(ttl))) = (&args.refresh_ahead, &args.ttl)
            && ahead.millis >= *ttl
        {
            errors.push(
                Error::custom(
                    "`refresh_ahead` must be shorter than `ttl`: it is the part of the entry's \
                     life in which a call starts a background refresh",
                )
                .with_span(&ahead.span),
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

    // Whether values are stamped with their freshness (stale serving or
    // refresh ahead).
    pub(crate) fn stamped(&self) -> bool {
        self.stale_while_revalidate.is_some()
            || self.stale_if_error.is_some()
            || self.refresh_ahead.is_some()
    }

    pub(crate) fn companions(&self) -> bool {
        self.companions.as_ref().is_none_or(|c| c.0)
    }
}

// `ttl = 300`, `ttl = "5m"`, or any other expression: a `Duration` or whole
// seconds, checked by the compiler.
#[derive(Debug, Clone)]
pub(crate) enum TtlArg {
    Millis(u64),
    Expr(Expr),
    // Reported by `CachedArgs::parse`.
    Bad(Error),
}

impl FromMeta for TtlArg {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        Ok(Self::parse(expr).unwrap_or_else(TtlArg::Bad))
    }
}

impl TtlArg {
    fn parse(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit { lit, .. }) => match lit {
                Lit::Int(_) | Lit::Str(_) => Ok(TtlArg::Millis(duration_lit("ttl", lit)?)),
                other => Err(Error::custom(TTL_SHAPE).with_span(other)),
            },
            // `-5`: a literal, negative.
            Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => Err(Error::custom(
                "`ttl` must be a positive whole number of seconds",
            )
            .with_span(expr)),
            Expr::Group(group) => Self::parse(&group.expr),
            other => Ok(TtlArg::Expr(other.clone())),
        }
    }
}

// A duration option: whole seconds or a duration string, never zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) millis: u64,
    pub(crate) span: Span,
}

impl Window {
    fn parse(option: &str, expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: lit @ (Lit::Int(_) | Lit::Str(_)),
                ..
            }) => Ok(Window {
                millis: duration_lit(option, lit)?,
                span: lit.span(),
            }),
            Expr::Group(group) => Self::parse(option, &group.expr),
            other => Err(Error::custom(format!(
                "expected `{option} = <seconds>` or a duration string such as `{option} = \"30s\"`"
            ))
            .with_span(other)),
        }
    }

    // As milliseconds in a `u32`, the width the entry's stamp stores.
    pub(crate) fn millis_u32(&self, option: &str) -> darling::Result<u32> {
        u32::try_from(self.millis).map_err(|_| {
            Error::custom(format!("`{option}` can be at most 49 days (\"49d\")"))
                .with_span(&self.span)
        })
    }
}

// darling names the field, so each window option gets its own type.
macro_rules! window_option {
    ($($name:ident => $option:literal),*) => {$(
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub(crate) Window);
        impl FromMeta for $name {
            fn from_expr(expr: &Expr) -> darling::Result<Self> {
                Window::parse($option, expr).map($name)
            }
        }
        impl std::ops::Deref for $name {
            type Target = Window;
            fn deref(&self) -> &Window {
                &self.0
            }
        }
    )*};
}

// `cache_none` / `cache_err`: a flag (failures live for `ttl`) or their own
// TTL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Negative {
    pub(crate) ttl: Option<Window>,
}

impl FromMeta for Negative {
    fn from_word() -> darling::Result<Self> {
        Ok(Negative { ttl: None })
    }

    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        let ttl = Window::parse("cache_none", expr).map_err(|_| {
            Error::custom(
                "expected a flag (`cache_none`, `cache_err`: failures live for `ttl`) or their \
                 own TTL (`cache_none = \"30s\"`, `cache_err = 5`)",
            )
            .with_span(expr)
        })?;
        Ok(Negative { ttl: Some(ttl) })
    }
}

// `jitter = "10%"`: TTLs are cut by up to that share, at random.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Jitter {
    pub(crate) permille: u16,
}

impl FromMeta for Jitter {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        let shape = || {
            Error::custom(
                "expected `jitter = \"10%\"`: a percentage above 0 and below 100, with at most \
                 one decimal (\"2.5%\")",
            )
            .with_span(expr)
        };
        let Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) = expr
        else {
            return Err(shape());
        };
        let text = s.value();
        let number = text.strip_suffix('%').ok_or_else(shape)?;
        let (whole, tenths) = match number.split_once('.') {
            Some((w, t)) if t.len() == 1 => (w, t),
            Some(_) => return Err(shape()),
            None => (number, "0"),
        };
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(tenths) {
            return Err(shape());
        }
        let permille = whole
            .parse::<u16>()
            .ok()
            .and_then(|w| w.checked_mul(10))
            .and_then(|w| w.checked_add(tenths.parse::<u16>().ok()?))
            .ok_or_else(shape)?;
        if permille == 0 || permille >= 1000 {
            return Err(shape());
        }
        Ok(Jitter { permille })
    }
}

// `max_entries = 10_000`: the bound of a `local` memo.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxEntries(pub(crate) usize);

impl FromMeta for MaxEntries {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => match int.base10_parse::<usize>() {
                Ok(n) if n > 0 => Ok(MaxEntries(n)),
                _ => Err(
                    Error::custom("`max_entries` must be a whole number above zero").with_span(int),
                ),
            },
            other => {
                Err(Error::custom("expected `max_entries = <number of entries>`").with_span(other))
            }
        }
    }
}

// `max_bytes = 64 * 1024 * 1024` or `max_bytes = "64 MiB"`: a `local` memo
// bounded by the size of its entries.
#[derive(Debug, Clone)]
pub(crate) enum MaxBytes {
    Bytes(u64),
    Expr(Expr),
}

impl FromMeta for MaxBytes {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => match int.base10_parse::<u64>() {
                Ok(n) if n > 0 => Ok(MaxBytes::Bytes(n)),
                _ => Err(
                    Error::custom("`max_bytes` must be a whole number above zero").with_span(int),
                ),
            },
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => parse_bytes(&s.value()).map(MaxBytes::Bytes).ok_or_else(|| {
                Error::custom(
                    "expected `max_bytes = \"64 MiB\"`: a whole number above zero with a unit \
                     (B, KB, MB, GB, KiB, MiB, GiB), or a number of bytes",
                )
                .with_span(s)
            }),
            other => Ok(MaxBytes::Expr(other.clone())),
        }
    }
}

// "64 MiB" → 67108864; `None` for zero, overflow or an unknown unit.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.replace('_', "").parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale).filter(|&n| n > 0)
}

// `companions = false`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Companions(bool);

impl FromMeta for Companions {
    fn from_word() -> darling::Result<Self> {
        Ok(Companions(true))
    }

    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Ok(Companions(b.value)),
            other => Err(Error::custom(
                "expected `companions = false` (no companion fns) or `companions = true`",
            )
            .with_span(other)),
        }
    }
}

// Milliseconds of `option = 300` (seconds) or `option = "5m"`; never zero.
fn duration_lit(option: &str, lit: &Lit) -> darling::Result<u64> {
    let millis = match lit {
        Lit::Int(int) => {
            let secs: u64 = int.base10_parse().map_err(|_| {
                Error::custom(format!(
                    "`{option}` must be a positive whole number of seconds"
                ))
                .with_span(int)
            })?;
            secs.checked_mul(1000)
                .ok_or_else(|| Error::custom(format!("`{option}` is too large")).with_span(int))?
        }
        Lit::Str(s) => {
            parse_duration(option, &s.value()).map_err(|msg| Error::custom(msg).with_span(s))?
        }
        other => return Err(Error::custom(TTL_SHAPE).with_span(other)),
    };
    if millis == 0 {
        let hint = if option == "ttl" {
            "; leave `ttl` out to use the cache's default TTL"
        } else {
            "; leave the option out instead"
        };
        return Err(
            Error::custom(format!("`{option}` must be greater than zero{hint}"))
                .with_span(&lit.span()),
        );
    }
    Ok(millis)
}

const TTL_SHAPE: &str = "expected `ttl = <seconds>`, a duration string such as `ttl = \"5m\"`, \
                         or a constant of type `Duration` or whole seconds (`ttl = USER_TTL`)";

window_option!(
    StaleWhileRevalidate => "stale_while_revalidate",
    StaleIfError => "stale_if_error",
    RefreshAhead => "refresh_ahead"
);

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
fn parse_duration(option: &str, text: &str) -> Result<u64, String> {
    let malformed = || {
        format!(
            "invalid {option} {text:?}: expected a duration such as \"90s\", \"5m\", \"1h30m\" \
             or \"250ms\" (units: d, h, m, s, ms)"
        )
    };
    let too_large = || format!("{option} {text:?} is too large");

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
                "invalid {option} {text:?}: write each unit once, largest first (d, h, m, s, ms)"
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

    fn ttl_millis(args: &CachedArgs) -> u64 {
        match &args.ttl {
            Some(TtlArg::Millis(ms)) => *ms,
            other => panic!("not a literal ttl: {other:?}"),
        }
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
        assert_eq!(ttl_millis(&args), 300_000);
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
            assert_eq!(ttl_millis(&args), millis, "{text}");
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
    fn ttl_can_be_an_expression() {
        let args = parse(quote!(ttl = SOME_CONST)).unwrap();
        assert!(matches!(args.ttl, Some(TtlArg::Expr(_))));
        let args = parse(quote!(ttl = Duration::from_secs(5 * 60))).unwrap();
        assert!(matches!(args.ttl, Some(TtlArg::Expr(_))));
    }

    #[test]
    fn windows_and_negative_caching() {
        let args = parse(quote!(
            ttl = 60,
            stale_while_revalidate = "30s",
            stale_if_error = 300,
            refresh_ahead = "10s",
            cache_none,
            cache_err = "5s",
            jitter = "12.5%",
            value_ttl = token::expires_in,
            companions = false
        ))
        .unwrap();
        assert_eq!(args.stale_while_revalidate.unwrap().millis, 30_000);
        assert_eq!(args.stale_if_error.as_ref().unwrap().millis, 300_000);
        assert_eq!(args.refresh_ahead.unwrap().millis, 10_000);
        assert!(args.cache_none.as_ref().unwrap().ttl.is_none());
        assert_eq!(args.cache_err.as_ref().unwrap().ttl.unwrap().millis, 5_000);
        assert_eq!(args.jitter.unwrap().permille, 125);
        assert!(args.value_ttl.is_some());
        assert!(!args.companions());
        assert!(args.stamped());
        assert!(parse(quote!()).unwrap().companions());
    }

    #[test]
    fn option_errors_name_the_option() {
        let msg = err(quote!(stale_while_revalidate = 1.5));
        assert!(msg.contains("stale_while_revalidate"), "{msg}");
        let msg = err(quote!(refresh_ahead = "soon"));
        assert!(msg.contains("invalid refresh_ahead"), "{msg}");
        let msg = err(quote!(stale_if_error = 0));
        assert!(
            msg.contains("`stale_if_error` must be greater than zero"),
            "{msg}"
        );
        let msg = err(quote!(cache_none = true));
        assert!(msg.contains("cache_none"), "{msg}");
        for bad in ["10", "0%", "100%", "1.25%", "x%", "-5%", "150%"] {
            let lit = LitStr::new(bad, Span::call_site());
            let msg = err(quote!(jitter = #lit));
            assert!(msg.contains("jitter"), "{bad}: {msg}");
        }
        let msg = err(quote!(companions = "no"));
        assert!(msg.contains("companions = false"), "{msg}");
        let msg = err(quote!(ttl = 60, refresh_ahead = 60));
        assert!(msg.contains("shorter than `ttl`"), "{msg}");
        let msg = err(quote!(ttl = 1.5));
        assert!(msg.contains("ttl = USER_TTL"), "{msg}");
    }

    #[test]
    fn key_must_be_a_string() {
        assert!(parse(quote!(key = 5)).is_err());
    }

    #[test]
    fn max_bytes_reads_units() {
        assert_eq!(super::parse_bytes("64 MiB"), Some(64 << 20));
        assert_eq!(super::parse_bytes("10KB"), Some(10_000));
        assert_eq!(super::parse_bytes("1_000"), Some(1_000));
        assert_eq!(super::parse_bytes("2 GiB"), Some(2 << 30));
        for bad in [
            "0",
            "0 MiB",
            "5 TB",
            "MiB",
            "1.5 MiB",
            "-1",
            "99999999999999 GiB",
        ] {
            assert_eq!(super::parse_bytes(bad), None, "{bad}");
            let lit = LitStr::new(bad, Span::call_site());
            let msg = err(quote!(local, max_bytes = #lit));
            assert!(msg.contains("max_bytes"), "{bad}: {msg}");
        }
        let msg = err(quote!(local, max_bytes = 0));
        assert!(msg.contains("above zero"), "{msg}");
        let args = parse(quote!(local, max_bytes = 1 << 20, weigher = weigh)).unwrap();
        assert!(matches!(
            args.max_bytes.as_deref(),
            Some(super::MaxBytes::Expr(_))
        ));
        assert!(args.weigher.is_some());
    }
}
