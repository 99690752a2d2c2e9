// Checks on the annotated fn, and what expansion needs to know about it.

use darling::Error;
use darling::error::Accumulator;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, Ident, Pat, PatIdent, ReturnType, Signature, Type, TypeImplTrait};

use super::args::CachedArgs;

// How the return value maps to what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    // `Result<T, E>`: only `Ok` is stored.
    Result,
    // `Option<T>`: only `Some` is stored.
    Option,
    // Anything else: always stored.
    Plain,
}

// A named, non-receiver parameter.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    // As declared, without `mut`.
    pub(crate) ident: Ident,
    // The argument as the generated wrapper and companions declare it: the
    // user's tokens minus `mut`, which would be unused there.
    pub(crate) arg: FnArg,
}

#[derive(Debug, Clone)]
pub(crate) struct Checked {
    // `&self` (or `self: &Self`) of a method.
    pub(crate) receiver: Option<FnArg>,
    pub(crate) params: Vec<Param>,
    pub(crate) mode: Mode,
    // Arguments are owned: a refresh can run on a spawned task.
    pub(crate) owned: bool,
    // A typed memo in this process (`local`, or a sync fn).
    pub(crate) local: bool,
    // The type a local memo stores.
    pub(crate) value_ty: Option<Type>,
}

impl Checked {
    // Names a template may refer to: `self` first for methods.
    pub(crate) fn names(&self) -> Vec<Ident> {
        let receiver = self.receiver.as_ref().map(|r| Ident::new("self", r.span()));
        receiver
            .into_iter()
            .chain(self.params.iter().map(|p| p.ident.clone()))
            .collect()
    }
}

// Every problem is pushed to `errors`; the result is only used for
// expansion when `errors` stays empty. `args` is `None` when the options
// themselves failed to parse: checks that depend on them are skipped.
pub(crate) fn check(
    sig: &Signature,
    args: Option<&CachedArgs>,
    errors: &mut Accumulator,
) -> Checked {
    // A sync fn memoizes in process, as `local` does.
    let local = sig.asyncness.is_none() || args.is_some_and(|a| a.local.is_present());
    if let Some(unsafety) = &sig.unsafety {
        errors
            .push(Error::custom("#[cached] cannot be used on an `unsafe fn`").with_span(unsafety));
    }

    let has_key = args.is_none_or(|a| a.key.is_some());
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                // `Some(mutability)` for `&self`, `&mut self`, `self: &Self`,
                // `self: &mut Self`; `None` for receivers by value.
                let reference = match (&r.reference, &*r.ty) {
                    (Some(_), _) => Some(r.mutability),
                    (None, Type::Reference(reference)) if r.colon_token.is_some() => {
                        Some(reference.mutability)
                    }
                    _ => None,
                };
                match reference {
                    Some(None) => receiver = Some(input.clone()),
                    Some(Some(mutability)) => errors.push(
                        Error::custom(
                            "#[cached] cannot be used on `&mut self` methods: the cached result \
                             would skip the mutation",
                        )
                        .with_span(&mutability),
                    ),
                    None => errors.push(
                        Error::custom(
                            "#[cached] cannot be used on methods taking `self` by value; take \
                             `&self`",
                        )
                        .with_span(&r.self_token),
                    ),
                }
            }
            FnArg::Typed(typed) => {
                if !has_key && contains_impl_trait(&typed.ty) {
                    errors.push(
                        Error::custom(
                            "arguments of type `impl Trait` cannot be encoded into the default \
                             key; give an explicit `key = \"...\"`",
                        )
                        .with_span(typed),
                    );
                }
                match &*typed.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        ident,
                        ..
                    }) if ident != "_" => {
                        let mut arg = typed.clone();
                        if let Pat::Ident(pat) = &mut *arg.pat {
                            pat.mutability = None;
                        }
                        params.push(Param {
                            ident: ident.clone(),
                            arg: FnArg::Typed(arg),
                        });
                    }
                    pat => errors.push(
                        Error::custom(
                            "#[cached] needs a plain name for every parameter; destructure it \
                             inside the function body",
                        )
                        .with_span(pat),
                    ),
                }
            }
        }
    }

    if let ReturnType::Type(_, ty) = &sig.output
        && contains_impl_trait(ty)
    {
        errors.push(
            Error::custom("#[cached] cannot store an `impl Trait` return value; name the type")
                .with_span(ty),
        );
    }

    let mode = args.map_or(Mode::Plain, |args| mode(&sig.output, args));
    if let Some(args) = args {
        check_options(args, mode, errors);
    }
    let value_ty = match args {
        Some(args) if local => check_local(sig, args, &params, mode, errors),
        _ => None,
    };
    if let Some(args) = args {
        check_bounds(args, local, errors);
    }
    // A refresh can move to a background task only if the computation owns
    // everything it uses: no receiver, no borrowed argument, no generics.
    let owned = receiver.is_none()
        && sig.generics.params.is_empty()
        && params.iter().all(|p| match &p.arg {
            FnArg::Typed(typed) => !borrows(&typed.ty),
            FnArg::Receiver(_) => false,
        });
    Checked {
        receiver,
        params,
        mode,
        owned,
        local,
        value_ty,
    }
}

// `max_entries`, `max_bytes` and `weigher`: one bound, on a `local` memo.
fn check_bounds(args: &CachedArgs, local: bool, errors: &mut Accumulator) {
    let bounds = [
        ("max_entries", args.max_entries.as_ref().map(|m| m.span())),
        ("max_bytes", args.max_bytes.as_ref().map(|m| m.span())),
        (
            "weigher",
            args.weigher.as_ref().map(syn::spanned::Spanned::span),
        ),
    ];
    if !local {
        for (option, span) in bounds {
            if let Some(span) = span {
                errors.push(
                    Error::custom(format!(
                        "`{option}` bounds a `local` memo; the shared cache is bounded by its \
                         backend (`MemoryBackend::builder().max_capacity_bytes(..)`): add \
                         `local`, or remove it"
                    ))
                    .with_span(&span),
                );
            }
        }
        return;
    }
    if let (Some(_), Some(bytes)) = (&args.max_entries, &args.max_bytes) {
        errors.push(
            Error::custom(
                "a `local` memo has one bound: `max_entries` (a count) or `max_bytes` (a size), \
                 not both",
            )
            .with_span(&bytes.span()),
        );
    }
    if let (Some(weigher), None) = (&args.weigher, &args.max_bytes) {
        errors.push(
            Error::custom(
                "`weigher` weighs values against `max_bytes`: add `max_bytes = \"64 MiB\"`, or \
                 remove it",
            )
            .with_span(weigher),
        );
    }
}

// What `local` (or a sync fn) allows, and the type it stores.
fn check_local(
    sig: &Signature,
    args: &CachedArgs,
    params: &[Param],
    mode: Mode,
    errors: &mut Accumulator,
) -> Option<Type> {
    let why = if sig.asyncness.is_none() {
        "a sync fn is memoized in this process"
    } else {
        "`local` memoizes in this process"
    };
    let mut refuse = |option: &str, span: proc_macro2::Span, what: &str| {
        errors.push(
            Error::custom(format!("`{option}` cannot be used here: {why}, {what}"))
                .with_span(&span),
        );
    };
    if let Some(cache) = &args.cache {
        refuse(
            "cache",
            cache.span(),
            "not in a shared cache; remove `cache`, or make the fn async without `local`",
        );
    }
    if args.lock.is_present() {
        refuse(
            "lock",
            args.lock.span(),
            "so there are no other processes to coordinate with",
        );
    }
    if let Some(tag) = args.tags.first() {
        refuse("tags", tag.span(), "where tags have no backend to live in");
    }
    if !sig.generics.params.is_empty() {
        errors.push(
            Error::custom(format!(
                "{why}, in one typed store per fn: it cannot be generic; use the shared cache \
                 (an async fn without `local`)"
            ))
            .with_span(&sig.generics),
        );
    }
    if args.key.is_none() {
        for p in params {
            if let FnArg::Typed(typed) = &p.arg
                && borrows(&typed.ty)
            {
                errors.push(
                    Error::custom(format!(
                        "{why}, keyed by the arguments themselves when there is no `key`: they \
                         must be owned (`String`, not `&str`); or give a `key = \"...\"` template"
                    ))
                    .with_span(&typed.ty),
                );
            }
        }
    }
    let ReturnType::Type(_, ty) = &sig.output else {
        return Some(syn::parse_quote!(()));
    };
    let whole = match mode {
        Mode::Plain => true,
        Mode::Result => args.cache_err.is_some(),
        Mode::Option => args.cache_none.is_some(),
    };
    if whole {
        return Some((**ty).clone());
    }
    // `Result<T, E>` / `Option<T>`: the store holds `T`.
    let inner = match &**ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .and_then(|last| match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.first().and_then(|arg| match arg {
                    syn::GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                }),
                _ => None,
            }),
        _ => None,
    };
    if inner.is_none() {
        errors.push(
            Error::custom(format!(
                "{why}, in a store typed by the value: write the return type as `Result<T, E>` \
                 or `Option<T>`, not through an alias"
            ))
            .with_span(ty),
        );
    }
    inner
}

// Options that only make sense for some return types.
fn check_options(args: &CachedArgs, mode: Mode, errors: &mut Accumulator) {
    if let Some(none) = &args.cache_none
        && mode != Mode::Option
    {
        errors.push(
            Error::custom(
                "`cache_none` caches `None` results: the fn must return `Option<T>` (or use the \
                 `option` flag for an alias of `Option`)",
            )
            .with_span(&none.span()),
        );
    }
    if let Some(err) = &args.cache_err
        && mode != Mode::Result
    {
        errors.push(
            Error::custom(
                "`cache_err` caches `Err` results: the fn must return `Result<T, E>` (or use the \
                 `result` flag for an alias of `Result`)",
            )
            .with_span(&err.span()),
        );
    }
    if let Some(sie) = &args.stale_if_error
        && mode == Mode::Plain
    {
        errors.push(
            Error::custom(
                "`stale_if_error` serves a stale value when the fn fails, and this fn cannot \
                 fail: it must return `Result<T, E>` or `Option<T>` (or use the `result` / \
                 `option` flag for an alias)",
            )
            .with_span(&sie.span()),
        );
    }
    if let Some(w) = &args.stale_while_revalidate {
        errors.handle(w.millis_u32("stale_while_revalidate"));
    }
    if let Some(w) = &args.stale_if_error {
        errors.handle(w.millis_u32("stale_if_error"));
    }
}

// Whether a type borrows: a reference or a lifetime other than `'static`,
// or `impl Trait` (which may capture one).
fn borrows(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
                self.0 = true;
            }
            self.visit_type_mut(&mut r.elem);
        }
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            if l.ident != "static" {
                self.0 = true;
            }
        }
        fn visit_type_impl_trait_mut(&mut self, _: &mut TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

// Flags win; otherwise the last segment of the return type's path decides, so
// `io::Result<T>` is a result but an alias such as `UserResult` needs `result`.
fn mode(output: &ReturnType, args: &CachedArgs) -> Mode {
    if args.result.is_present() {
        return Mode::Result;
    }
    if args.option.is_present() {
        return Mode::Option;
    }
    let ReturnType::Type(_, ty) = output else {
        return Mode::Plain;
    };
    let mut ty = &**ty;
    while let Type::Group(syn::TypeGroup { elem, .. }) | Type::Paren(syn::TypeParen { elem, .. }) =
        ty
    {
        ty = elem;
    }
    match ty {
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "Result" => Mode::Result,
            Some(last) if last.ident == "Option" => Mode::Option,
            _ => Mode::Plain,
        },
        _ => Mode::Plain,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_impl_trait_mut(&mut self, _: &mut TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;
    use syn::{ItemFn, parse_quote};

    fn args(tokens: proc_macro2::TokenStream) -> CachedArgs {
        super::super::args::tests::parse(tokens).unwrap()
    }

    fn run(func: ItemFn, args: &CachedArgs) -> (Checked, Vec<String>) {
        let mut errors = Error::accumulator();
        let checked = check(&func.sig, Some(args), &mut errors);
        let errors = errors
            .into_inner()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        (checked, errors)
    }

    #[test]
    fn free_fn() {
        let (checked, errors) = run(
            parse_quote!(
                async fn get_user(user_id: u64, mut name: &str) -> Result<u8, ()> {}
            ),
            &args(quote!()),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(checked.receiver.is_none());
        assert_eq!(checked.mode, Mode::Result);
        let names: Vec<String> = checked.names().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["user_id", "name"]);
        // `mut` is dropped from the copies.
        let arg = &checked.params[1].arg;
        assert_eq!(quote!(#arg).to_string(), quote!(name: &str).to_string());
    }

    #[test]
    fn method_with_ref_self() {
        for func in [
            parse_quote!(
                async fn get(&self, id: u64) -> u8 {}
            ),
            parse_quote!(
                async fn get(&'a self, id: u64) -> u8 {}
            ),
            parse_quote!(
                async fn get(self: &Self, id: u64) -> u8 {}
            ),
        ] {
            let (checked, errors) = run(func, &args(quote!()));
            assert!(errors.is_empty(), "{errors:?}");
            assert!(checked.receiver.is_some());
            let names: Vec<String> = checked.names().iter().map(ToString::to_string).collect();
            assert_eq!(names, ["self", "id"]);
            assert_eq!(checked.mode, Mode::Plain);
        }
    }

    #[test]
    fn requires_async() {
        let (_, errors) = run(
            parse_quote!(
                fn get() -> u8 {
                    1
                }
            ),
            &args(quote!()),
        );
        assert!(
            errors.is_empty(),
            "a sync fn is memoized locally: {errors:?}"
        );
    }

    #[test]
    fn rejects_unsafe() {
        let (_, errors) = run(
            parse_quote!(
                async unsafe fn get() -> u8 {
                    1
                }
            ),
            &args(quote!()),
        );
        assert_eq!(errors, ["#[cached] cannot be used on an `unsafe fn`"]);
    }

    #[test]
    fn rejects_mut_self() {
        for func in [
            parse_quote!(
                async fn get(&mut self) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(self: &mut Self) -> u8 {
                    1
                }
            ),
        ] {
            let (_, errors) = run(func, &args(quote!()));
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains("`&mut self`"));
        }
    }

    #[test]
    fn rejects_self_by_value() {
        for func in [
            parse_quote!(
                async fn get(self) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(mut self) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(self: Box<Self>) -> u8 {
                    1
                }
            ),
        ] {
            let (_, errors) = run(func, &args(quote!()));
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains("`self` by value"));
        }
    }

    #[test]
    fn impl_trait_needs_a_key() {
        let func: ItemFn = parse_quote!(
            async fn get(a: u8, name: &impl Display) -> u8 {
                1
            }
        );
        let (_, errors) = run(func.clone(), &args(quote!()));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("arguments of type `impl Trait`"));
        let (_, errors) = run(func, &args(quote!(key = "{a}")));
        assert!(errors.is_empty());
    }

    #[test]
    fn impl_trait_return_is_rejected() {
        let (_, errors) = run(
            parse_quote!(
                async fn get() -> Vec<impl Clone> {
                    1
                }
            ),
            &args(quote!()),
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("`impl Trait` return"));
    }

    #[test]
    fn rejects_non_ident_patterns() {
        for func in [
            parse_quote!(
                async fn get((a, b): (u8, u8)) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(_: u8) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(ref a: u8) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(a @ 1..=2: u8) -> u8 {
                    1
                }
            ),
            parse_quote!(
                async fn get(Wrapper(a): Wrapper) -> u8 {
                    1
                }
            ),
        ] {
            let (_, errors) = run(func, &args(quote!()));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("plain name"));
        }
    }

    #[test]
    fn all_errors_are_collected() {
        let (_, errors) = run(
            parse_quote!(
                fn get(&mut self, (a, b): (u8, u8), c: impl Clone) {}
            ),
            &args(quote!()),
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn mode_detection() {
        let none = args(quote!());
        let cases: [(ReturnType, Mode); 7] = [
            (parse_quote!(-> Result<u8, E>), Mode::Result),
            (parse_quote!(-> std::io::Result<u8>), Mode::Result),
            (parse_quote!(-> Option<u8>), Mode::Option),
            (parse_quote!(-> ::core::option::Option<u8>), Mode::Option),
            (parse_quote!(-> UserResult), Mode::Plain),
            (parse_quote!(-> Vec<Option<u8>>), Mode::Plain),
            (ReturnType::Default, Mode::Plain),
        ];
        for (output, expected) in cases {
            assert_eq!(mode(&output, &none), expected, "{}", quote!(#output));
        }
    }

    #[test]
    fn flags_force_the_mode() {
        let output: ReturnType = parse_quote!(-> UserResult);
        assert_eq!(mode(&output, &args(quote!(result))), Mode::Result);
        assert_eq!(mode(&output, &args(quote!(option))), Mode::Option);
    }
}
