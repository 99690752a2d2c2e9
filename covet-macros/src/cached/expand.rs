// Code generation: the user's fn becomes a private `__covet_<name>_uncached`
// with its body and spans untouched, a wrapper under the user's name that
// goes through the cache, and the `_key`, `_invalidate` and `_refresh`
// companions.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericParam, Ident, ItemFn, LitStr, Meta, ReturnType};

use super::args::{CachedArgs, TtlArg, Window};
use super::key::Template;
use super::validate::{Checked, Mode};

pub(crate) struct Input<'a> {
    pub(crate) func: ItemFn,
    pub(crate) args: &'a CachedArgs,
    pub(crate) checked: Checked,
    pub(crate) key: Option<Template>,
    pub(crate) tags: Vec<Template>,
}

// What the generated code does when the default key cannot be built because
// an argument failed to serialize.
enum OnEncodeFailure {
    // `<fn>_key`: return what was written so far.
    Ignore,
    // Wrapper and `<fn>_refresh`: skip the cache, run the body.
    Bypass,
    // `<fn>_with_status`: the same, saying so.
    BypassWithStatus,
    // `<fn>_invalidate`: nothing can be stored under that key.
    NothingRemoved,
}

struct Expander<'a> {
    input: &'a Input<'a>,
    // `#root::__private`
    private: TokenStream,
    root: TokenStream,
    // Call of the uncached fn with every argument, moved.
    call: TokenStream,
}

mod local;

pub(crate) fn expand(input: &Input<'_>) -> TokenStream {
    let root = input.args.root();
    let expander = Expander {
        input,
        private: quote!(#root::__private),
        root,
        call: uncached_call(input),
    };
    if input.checked.local {
        expander.local_items()
    } else {
        expander.items()
    }
}

impl Expander<'_> {
    // The parts both expansions (shared cache, local memo) build alike.
    fn frame(&self) -> Frame<'_> {
        let Input { func, checked, .. } = self.input;
        let (vis, sig) = (&func.vis, &func.sig);
        let private = &self.private;
        let name = &sig.ident;
        let inputs: Vec<&FnArg> = checked
            .receiver
            .iter()
            .chain(checked.params.iter().map(|p| &p.arg))
            .collect();
        let mut inner_sig = sig.clone();
        inner_sig.ident = uncached_ident(name);
        let mut outer_sig = sig.clone();
        outer_sig.inputs = inputs.iter().copied().cloned().collect();
        let site_name = format_ident!("__covet_{}_site", name.unraw());
        let site_path = self.site_path(&site_name);
        let site_path_str = LitStr::new(&format!("::{}", name.unraw()), Span::call_site());
        let site_item = quote! {
            #[doc(hidden)]
            #[inline]
            #[allow(non_snake_case, dead_code)]
            #vis fn #site_name() -> &'static #private::FnSite {
                static __COVET_SITE: #private::FnSite =
                    #private::FnSite::new(::core::concat!(::core::module_path!(), #site_path_str));
                &__COVET_SITE
            }
        };
        // Spanned on the attribute: a companion whose name is taken is
        // reported there.
        let companion =
            |suffix: &str| Ident::new(&format!("{}_{suffix}", name.unraw()), Span::call_site());
        let mut refresh_sig = outer_sig.clone();
        refresh_sig.ident = companion("refresh");
        let mut status_sig = outer_sig.clone();
        status_sig.ident = companion("with_status");
        let root = &self.root;
        let ret = match &sig.output {
            ReturnType::Type(_, ty) => quote!(#ty),
            ReturnType::Default => quote!(()),
        };
        status_sig.output = syn::parse_quote!(-> (#ret, #root::cache::CacheStatus));
        let link = match &checked.receiver {
            Some(_) => format!("Self::{}", name.unraw()),
            None => name.unraw().to_string(),
        };
        Frame {
            attrs: SplitAttrs::new(&func.attrs),
            inputs,
            inner_sig,
            outer_sig,
            site_item,
            site_path,
            key_name: companion("key"),
            invalidate_name: companion("invalidate"),
            clear_name: companion("clear"),
            stats_name: companion("stats"),
            refresh_sig,
            status_sig,
            link,
        }
    }

    fn items(&self) -> TokenStream {
        let frame = self.frame();
        let wrapper_body = self.call_body(false);
        let companions = if self.input.args.companions() {
            self.companions(&frame)
        } else {
            TokenStream::new()
        };
        let fns = frame.fns(&self.input.func, &TokenStream::new(), &wrapper_body);
        quote! {
            #fns
            #companions
        }
    }

    // `Self::__covet_f_site` or `__covet_f_site`.
    fn site_path(&self, site_name: &Ident) -> TokenStream {
        match &self.input.checked.receiver {
            Some(_) => quote!(Self::#site_name),
            None => quote!(#site_name),
        }
    }

    // The companions: `_key`, `_invalidate`, `_refresh`, `_with_status`,
    // `_stats`, `_clear`.
    fn companions(&self, frame: &Frame<'_>) -> TokenStream {
        let func = &self.input.func;
        let vis = &func.vis;
        let private = &self.private;
        let root = &self.root;
        let generics = &func.sig.generics;
        let where_clause = &func.sig.generics.where_clause;
        let Frame {
            inputs,
            attrs,
            key_name,
            invalidate_name,
            clear_name,
            refresh_sig,
            link,
            ..
        } = frame;
        let shared_attrs = &attrs.shared;
        let off = OFF;
        let key_doc = format!(
            " Cache key of [`{link}`] for these arguments, without the cache's namespace.\n\n{off}"
        );
        let invalidate_doc = format!(
            " Removes the cached result of [`{link}`] for these arguments.\n\n Returns whether \
             an entry was removed.\n\n{off}"
        );
        let refresh_doc =
            format!(" Recomputes [`{link}`] for these arguments and stores the result.\n\n{off}");
        let status_doc = format!(
            " Calls [`{link}`] and says how the call was answered (a hit, a miss, a stale \
             value...).\n\n{off}"
        );
        let clear_doc = format!(
            " Removes every cached result of [`{link}`] (by the pattern of its keys, or on \
             backends that cannot delete by pattern, by a tag its entries carry). Returns how \
             many entries were removed when the backend can count them, else 0.\n\n{off}"
        );

        let cache = self.cache_setup();
        let key_invalidate = self.full_key(OnEncodeFailure::NothingRemoved);
        let key_bare = self.write_key(OnEncodeFailure::Ignore);
        let status_body = self.call_body(true);
        let refresh_body = self.refresh_body();
        let pattern = self.pattern();
        // `_clear` takes the receiver and the arguments its cache
        // expression names.
        let clear_inputs = self.clear_inputs(inputs);
        let status_and_stats = frame.status_and_stats(vis, root, &status_doc, &status_body);

        quote! {
            #(#shared_attrs)*
            #[doc = #key_doc]
            #[allow(dead_code, unused_variables, clippy::used_underscore_binding)]
            #vis fn #key_name #generics (#(#inputs),*) -> ::std::string::String #where_clause {
                let mut __covet_key = #private::KeyBuf::bare();
                #key_bare
                #private::KeyBuf::into_user_key(__covet_key)
            }

            #(#shared_attrs)*
            #[doc = #invalidate_doc]
            #[allow(dead_code, unused_variables, clippy::used_underscore_binding)]
            #vis async fn #invalidate_name #generics (#(#inputs),*)
                -> ::core::result::Result<bool, #root::cache::Error> #where_clause
            {
                #cache
                #key_invalidate
                #private::invalidate(__covet_cache, __covet_key).await
            }

            #(#shared_attrs)*
            #[doc = #refresh_doc]
            #[allow(dead_code, clippy::used_underscore_binding)]
            #vis #refresh_sig {
                #refresh_body
            }

            #status_and_stats

            #(#shared_attrs)*
            #[doc = #clear_doc]
            #[allow(dead_code, unused_variables, clippy::used_underscore_binding)]
            #vis async fn #clear_name (#(#clear_inputs),*)
                -> ::core::result::Result<u64, #root::cache::Error>
            {
                #cache
                let __covet_pattern: fn() -> ::std::string::String = #pattern;
                #private::clear(__covet_cache, __covet_pattern()).await
            }
        }
    }

    // The receiver, and the parameters the `cache = ...` expression names.
    fn clear_inputs<'i>(&self, inputs: &[&'i FnArg]) -> Vec<&'i FnArg> {
        let Some(expr) = &self.input.args.cache else {
            return Vec::new();
        };
        let mut named = std::collections::HashSet::new();
        collect_idents(quote!(#expr), &mut named);
        inputs
            .iter()
            .copied()
            .filter(|arg| match arg {
                FnArg::Receiver(_) => named.contains("self"),
                FnArg::Typed(typed) => match &*typed.pat {
                    syn::Pat::Ident(p) => named.contains(&p.ident.unraw().to_string()),
                    _ => false,
                },
            })
            .collect()
    }

    // `Some(|| type_name::<Self>())` for methods: their path in `fn_stats`.
    fn owner(&self) -> TokenStream {
        match &self.input.checked.receiver {
            Some(_) => quote!(::core::option::Option::Some(|| ::core::any::type_name::<
                Self,
            >())),
            None => quote!(::core::option::Option::None),
        }
    }

    // Binds `__covet_site` (the call registers with its first count).
    fn site_setup(&self) -> TokenStream {
        let name = &self.input.func.sig.ident;
        let site_name = format_ident!("__covet_{}_site", name.unraw());
        let site_path = self.site_path(&site_name);
        let private = &self.private;
        quote! {
            let __covet_site: &'static #private::FnSite = #site_path();
        }
    }

    // `let mut __covet_key = ...` with the full key; on an argument that
    // does not encode, `on_failure`.
    fn full_key(&self, on_failure: OnEncodeFailure) -> TokenStream {
        let private = &self.private;
        let write = self.write_key(on_failure);
        quote! {
            let mut __covet_key = #private::KeyBuf::new(__covet_cache);
            #write
        }
    }

    // Body of the wrapper (`status = false`) and of `<fn>_with_status`.
    fn call_body(&self, status: bool) -> TokenStream {
        let Input { checked, args, .. } = self.input;
        let private = &self.private;
        let root = &self.root;
        let site = self.site_setup();
        let cache = self.cache_setup();
        let on_failure = if status {
            OnEncodeFailure::BypassWithStatus
        } else {
            OnEncodeFailure::Bypass
        };
        let key = self.full_key(on_failure);
        let spec = self.spec();
        let tags = self.tags();
        let memo = self.memo();
        let owner = self.owner();
        let (make, shape) = self.make_and_shape();
        let span = self.error_span();
        let hit = self.hit_expr();
        let (lookup, around) = (
            self.runtime_fn(if args.stamped() {
                "lookup_stamped"
            } else {
                "lookup"
            }),
            self.runtime_fn("around"),
        );
        let lookup = if args.stamped() {
            quote_spanned!(span=> #lookup(__covet_cache, &__covet_key, &__covet_spec).await)
        } else {
            quote_spanned!(span=> #lookup(__covet_cache, &__covet_key, __covet_site, &mut __covet_down).await)
        };
        let launch = if args.stamped() && checked.owned {
            // Spanned on the option: a computation that cannot move to
            // another task (not `Send`) is reported there.
            let span = args
                .stale_while_revalidate
                .as_ref()
                .map(|w| w.span)
                .or(args.refresh_ahead.as_ref().map(|w| w.span))
                .unwrap_or(span);
            respan(quote!(#private::Spawn), span)
        } else {
            quote!(#private::Inline)
        };
        // Boxed: the miss path's state is not part of the fn's future, so
        // creating and moving that future on every call (a hit included)
        // stays cheap.
        let around = quote_spanned! {span=>
            ::std::boxed::Box::pin(#around(__covet_cache, __covet_key, #memo, __covet_found, __covet_make, __covet_shape, #launch)).await
        };
        let (ret_hit, ret) = if status {
            (
                quote!((#hit, #root::cache::CacheStatus::Hit)),
                quote!(#around),
            )
        } else {
            (hit, quote!(#around.0))
        };
        let check_hit = if args.stamped() {
            quote! {
                let __covet_found = #lookup;
                if let #private::Found::Fresh(__covet_hit) = __covet_found {
                    __covet_site.hit(#owner);
                    return #ret_hit;
                }
            }
        } else {
            quote! {
                let mut __covet_down = false;
                if let ::core::option::Option::Some(__covet_hit) = #lookup {
                    __covet_site.enter(#owner);
                    return #ret_hit;
                }
                let __covet_found = #private::missed(__covet_down);
            }
        };
        // A plain fn's options are needed only on a miss.
        let (spec_first, spec_after) = if args.stamped() {
            (spec, TokenStream::new())
        } else {
            (TokenStream::new(), spec)
        };
        quote! {
            #site
            #cache
            #key
            #spec_first
            #check_hit
            #spec_after
            #tags
            #make
            #shape
            #ret
        }
    }

    // What a hit returns: the stored value, wrapped in `Ok` / `Some` unless
    // the whole result is stored (`cache_err`, `cache_none`).
    fn hit_expr(&self) -> TokenStream {
        let Input { checked, args, .. } = self.input;
        match (
            checked.mode,
            args.cache_none.is_some(),
            args.cache_err.is_some(),
        ) {
            (Mode::Result, _, false) => quote!(::core::result::Result::Ok(__covet_hit)),
            (Mode::Option, false, _) => quote!(::core::option::Option::Some(__covet_hit)),
            _ => quote!(__covet_hit),
        }
    }

    // Body of `<fn>_refresh`.
    fn refresh_body(&self) -> TokenStream {
        let site = self.site_setup();
        let cache = self.cache_setup();
        let key = self.full_key(OnEncodeFailure::Bypass);
        let spec = self.spec();
        let tags = self.tags();
        let memo = self.memo();
        let (make, shape) = self.make_and_shape();
        let span = self.error_span();
        let refresh = self.runtime_fn("refresh");
        let refresh = quote_spanned! {span=>
            #refresh(__covet_cache, __covet_key, #memo, __covet_make(), __covet_shape).await
        };
        quote! {
            #site
            #cache
            #key
            #spec
            #tags
            #make
            #shape
            #refresh
        }
    }

    // Where errors about the cached value type are reported: the return
    // type, or `cache_err` (which makes the error type part of the value).
    fn error_span(&self) -> Span {
        let args = self.input.args;
        if let Some(err) = &args.cache_err {
            return err.span();
        }
        match &self.input.func.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => Span::call_site(),
        }
    }

    // `#private::name` with every span on the error span: rustc reports an
    // unmet bound of a call on its path, once per span and fn, so a value
    // type that cannot be cached is reported once.
    fn runtime_fn(&self, name: &str) -> TokenStream {
        let span = self.error_span();
        let private = &self.private;
        let name = Ident::new(name, span);
        respan(quote!(#private::#name), span)
    }

    // `__covet_make` (the computation, not started) and `__covet_shape`
    // (what of its result is stored, how failures are shared).
    fn make_and_shape(&self) -> (TokenStream, TokenStream) {
        let Input { checked, args, .. } = self.input;
        let private = &self.private;
        let call = &self.call;
        let make = quote!(let __covet_make = move || #call;);
        let shape = match checked.mode {
            Mode::Result if args.cache_err.is_some() => quote!(#private::ErrToo),
            // How a failure reaches the callers that waited for it: chosen
            // at compile time (autoref), shared when the error is `Clone`.
            Mode::Result => quote! {{
                #[allow(unused_imports)]
                use #private::{ShareClone as _, ShareNone as _};
                (&&#private::Share::of(&__covet_make)).sharer()
            }},
            Mode::Option if args.cache_none.is_some() => quote!(#private::NoneToo),
            Mode::Option => quote!(#private::SomePart),
            Mode::Plain => quote!(#private::Whole),
        };
        (make, quote!(let __covet_shape = #shape;))
    }

    // The `Memo` handed to the runtime on a miss.
    fn memo(&self) -> TokenStream {
        let private = &self.private;
        let value_ttl = match &self.input.args.value_ttl {
            Some(path) => quote!(::core::option::Option::Some(#path)),
            None => quote!(::core::option::Option::None),
        };
        let pattern = self.pattern();
        let owner = self.owner();
        quote! {
            #private::Memo {
                spec: __covet_spec,
                site: __covet_site,
                tags: __covet_tags,
                value_ttl: #value_ttl,
                pattern: #pattern,
                owner: #owner,
            }
        }
    }

    // A closure (coerced to `fn() -> String`) giving the glob that matches
    // every key of this fn, without the namespace.
    fn pattern(&self) -> TokenStream {
        let Input {
            func, checked, key, ..
        } = self.input;
        let private = &self.private;
        if let Some(template) = key {
            let glob = LitStr::new(&template.glob(), template.span());
            return quote!(|| ::std::string::String::from(#glob));
        }
        // The default key's prefix, with every instance of a generic fn.
        let mut format = format!("::{}", func.sig.ident.unraw());
        let mut format_args = Vec::new();
        if checked.receiver.is_some() {
            format.push_str("@{}");
            format_args.push(quote!(#private::glob_escape(::core::any::type_name::<Self>())));
        }
        let generic = func
            .sig
            .generics
            .params
            .iter()
            .any(|p| !matches!(p, GenericParam::Lifetime(_)));
        if generic {
            format.push_str("::<*>");
        }
        format.push_str(":*");
        quote! {
            || #private::glob_escape(::core::module_path!())
                + &::std::format!(#format #(, #format_args)*)
        }
    }

    // Binds `__covet_cache: &Cache`.
    fn cache_setup(&self) -> TokenStream {
        let private = &self.private;
        let root = &self.root;
        match &self.input.args.cache {
            // Bound by `let x = &(expr);` first so that a temporary (a
            // `cache = make_cache()` call) lives to the end of the fn.
            Some(expr) => {
                let as_cache =
                    quote_spanned!(expr.span()=> #private::AsCache::as_cache(__covet_cache_src));
                quote! {
                    let __covet_cache_src = &(#expr);
                    let __covet_cache: &#root::cache::Cache = #as_cache;
                }
            }
            None => quote! {
                let __covet_default = #private::default_cache();
                let __covet_cache: &#root::cache::Cache =
                    #private::AsCache::as_cache(&__covet_default);
            },
        }
    }

    // Appends the user key to `__covet_key`.
    fn write_key(&self, on_failure: OnEncodeFailure) -> TokenStream {
        let Input {
            func, checked, key, ..
        } = self.input;
        if let Some(template) = key {
            return template.write_statements(&self.private);
        }

        // Default key: `<module>::<fn>[@<Self>][::<T,N>]:<hex of the args>`.
        // Hex digits hold no `:`, so the last `:` ends the prefix. A fn path
        // holds only identifiers and `::`; `@` (methods) and `::<` (generic
        // arguments) never occur in one. So two fns never share a key: with
        // `::` before `Self`, a method `b` of `c::a` in crate `c` and a fn `a`
        // in module `c::b::c` would.
        let private = &self.private;
        let mut format = format!("::{}", func.sig.ident.unraw());
        let mut format_args = Vec::new();
        if checked.receiver.is_some() {
            format.push_str("@{}");
            format_args.push(quote!(::core::any::type_name::<Self>()));
        }
        let generic_args: Vec<TokenStream> = func
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(ty) => {
                    let ident = &ty.ident;
                    Some(quote!(::core::any::type_name::<#ident>()))
                }
                GenericParam::Const(konst) => {
                    let ident = &konst.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        if !generic_args.is_empty() {
            let slots = vec!["{}"; generic_args.len()].join(",");
            format.push_str(&format!("::<{slots}>"));
            format_args.extend(generic_args);
        }
        format.push(':');

        // One `write_args` per argument: postcard encodes a tuple as its
        // fields one after the other, so this is the encoding of the tuple of
        // arguments, and a missing `Serialize` is reported on the argument.
        let encodes: Vec<TokenStream> = checked
            .params
            .iter()
            .map(|p| {
                let ident = &p.ident;
                let write_args = respan(quote!(#private::write_args), ident.span());
                quote_spanned!(ident.span()=> #write_args(&mut __covet_key, &#ident))
            })
            .collect();
        let encode = if encodes.is_empty() {
            quote!()
        } else {
            let all = quote!(#(#encodes)&&*);
            match on_failure {
                OnEncodeFailure::Ignore => quote!(let _ = #all;),
                OnEncodeFailure::Bypass => {
                    let call = &self.call;
                    {
                        let owner = self.owner();
                        quote!(if !(#all) { __covet_site.bypassed(#owner); return #call.await; })
                    }
                }
                OnEncodeFailure::BypassWithStatus => {
                    let call = &self.call;
                    let root = &self.root;
                    let owner = self.owner();
                    quote! {
                        if !(#all) {
                            __covet_site.bypassed(#owner);
                            return (#call.await, #root::cache::CacheStatus::Bypassed);
                        }
                    }
                }
                OnEncodeFailure::NothingRemoved => {
                    quote!(if !(#all) { return ::core::result::Result::Ok(false); })
                }
            }
        };
        quote! {
            let _ = ::core::fmt::Write::write_fmt(
                &mut __covet_key,
                ::core::format_args!(
                    ::core::concat!(::core::module_path!(), #format)
                    #(, #format_args)*
                ),
            );
            #encode
        }
    }

    // `let __covet_spec = Spec::new(..)...;`: built per call (a `ttl`
    // expression need not be `const`), from constants the optimizer folds.
    fn spec(&self) -> TokenStream {
        let private = &self.private;
        let args = self.input.args;
        let millis = |ms: u64| {
            let ms = Literal::u64_unsuffixed(ms);
            quote!(::core::time::Duration::from_millis(#ms))
        };
        let ttl = match &args.ttl {
            Some(TtlArg::Millis(ms)) => {
                let d = millis(*ms);
                quote!(::core::option::Option::Some(#d))
            }
            Some(TtlArg::Expr(expr)) => {
                let ttl_of = respan(quote!(#private::ttl_of), expr.span());
                quote_spanned!(expr.span()=> ::core::option::Option::Some(#ttl_of(#expr)))
            }
            Some(TtlArg::Bad(_)) | None => quote!(::core::option::Option::None),
        };
        let mut spec = quote!(#private::Spec::new(#ttl));
        if args.lock.is_present() {
            spec.extend(quote!(.with_lock()));
        }
        let window = |w: &Window| {
            let ms = Literal::u32_unsuffixed(u32::try_from(w.millis).unwrap_or(u32::MAX));
            quote!(#ms)
        };
        if let Some(w) = &args.stale_while_revalidate {
            let ms = window(w);
            spec.extend(quote!(.stale_while_revalidate(#ms)));
        }
        if let Some(w) = &args.stale_if_error {
            let ms = window(w);
            spec.extend(quote!(.stale_if_error(#ms)));
        }
        if let Some(w) = &args.refresh_ahead {
            let d = millis(w.millis);
            spec.extend(quote!(.refresh_ahead(#d)));
        }
        let negative = args
            .cache_none
            .as_ref()
            .or(args.cache_err.as_ref())
            .and_then(|n| n.ttl);
        if let Some(w) = negative {
            let d = millis(w.millis);
            spec.extend(quote!(.negative_ttl(#d)));
        }
        if let Some(j) = &args.jitter {
            let permille = Literal::u16_unsuffixed(j.permille);
            spec.extend(quote!(.jitter(#permille)));
        }
        quote!(let __covet_spec: #private::Spec = #spec;)
    }

    fn tags(&self) -> TokenStream {
        let tags = &self.input.tags;
        let value = if tags.is_empty() {
            quote!(::std::vec::Vec::new())
        } else {
            let rendered = tags.iter().map(|tag| {
                let args = tag.format_args();
                quote_spanned!(tag.span()=> ::std::format!(#args))
            });
            quote!(::std::vec![#(#rendered),*])
        };
        quote!(let __covet_tags: ::std::vec::Vec<::std::string::String> = #value;)
    }
}

fn uncached_ident(name: &Ident) -> Ident {
    format_ident!("__covet_{}_uncached", name.unraw())
}

// `__covet_f_uncached::<T, N>(a, b)`, or `Self::...(self, a, b)` for methods.
// Lifetimes are left to inference: naming late-bound ones is an error.
fn uncached_call(input: &Input<'_>) -> TokenStream {
    let sig = &input.func.sig;
    let inner = uncached_ident(&sig.ident);
    let generic_args: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(ty) => Some(&ty.ident),
            GenericParam::Const(konst) => Some(&konst.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = if generic_args.is_empty() {
        quote!()
    } else {
        quote!(::<#(#generic_args),*>)
    };
    let args = input.checked.params.iter().map(|p| &p.ident);
    match &input.checked.receiver {
        Some(_) => quote!(Self::#inner #turbofish (self #(, #args)*)),
        None => quote!(#inner #turbofish (#(#args),*)),
    }
}

// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                tree = TokenTree::Group(respanned);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

// What the shared and the local expansion build alike (see `Expander::frame`).
struct Frame<'a> {
    inputs: Vec<&'a FnArg>,
    attrs: SplitAttrs,
    // The hidden fn holding the body, and the wrapper users call.
    inner_sig: syn::Signature,
    outer_sig: syn::Signature,
    // The fn's statistics site and the path that reaches it.
    site_item: TokenStream,
    site_path: TokenStream,
    key_name: Ident,
    invalidate_name: Ident,
    clear_name: Ident,
    stats_name: Ident,
    refresh_sig: syn::Signature,
    status_sig: syn::Signature,
    // The fn as an intra-doc link (`f` or `Self::f`).
    link: String,
}

// Closes every companion's doc.
const OFF: &str = " Generated by `#[cached]`; `companions = false` leaves it out.";

impl Frame<'_> {
    // The hidden fn with the body, the site, `extra` items, and the wrapper
    // around `body`.
    fn fns(&self, func: &ItemFn, extra: &TokenStream, body: &TokenStream) -> TokenStream {
        let Frame {
            attrs,
            inner_sig,
            outer_sig,
            site_item,
            ..
        } = self;
        let (outer_attrs, inner_attrs) = (&attrs.outer, &attrs.inner);
        let (vis, block) = (&func.vis, &func.block);
        quote! {
            #(#inner_attrs)*
            #[doc(hidden)]
            #[allow(non_snake_case, dead_code, clippy::unused_async)]
            #inner_sig #block

            #site_item
            #extra

            #(#outer_attrs)*
            #[allow(clippy::used_underscore_binding)]
            #vis #outer_sig {
                #body
            }
        }
    }

    // `<fn>_with_status` (around `status_body`) and `<fn>_stats`.
    fn status_and_stats(
        &self,
        vis: &syn::Visibility,
        root: &TokenStream,
        status_doc: &str,
        status_body: &TokenStream,
    ) -> TokenStream {
        let Frame {
            attrs,
            site_path,
            stats_name,
            status_sig,
            link,
            ..
        } = self;
        let shared_attrs = &attrs.shared;
        let stats_doc = format!(" Counters of [`{link}`] in this process.\n\n{OFF}");
        quote! {
            #(#shared_attrs)*
            #[doc = #status_doc]
            #[allow(dead_code, clippy::used_underscore_binding)]
            #vis #status_sig {
                #status_body
            }

            #(#shared_attrs)*
            #[doc = #stats_doc]
            #[allow(dead_code)]
            #vis fn #stats_name() -> #root::cache::FnStats {
                #site_path().snapshot()
            }
        }
    }
}

// Where each user attribute goes. Docs and other attributes stay on the
// wrapper (the fn users call). `cfg` goes everywhere. Lint levels go
// everywhere too, except that `expect` only stays `expect` on the uncached fn,
// which holds the body: elsewhere it becomes `allow`, because it could go
// unfulfilled there.
struct SplitAttrs {
    outer: Vec<Attribute>,
    inner: Vec<Attribute>,
    // Companions.
    shared: Vec<Attribute>,
}

impl SplitAttrs {
    fn new(attrs: &[Attribute]) -> Self {
        let mut split = SplitAttrs {
            outer: Vec::new(),
            inner: Vec::new(),
            shared: Vec::new(),
        };
        for attr in attrs {
            let path = attr.path();
            let everywhere = ["cfg", "allow", "warn", "deny", "forbid"]
                .iter()
                .any(|name| path.is_ident(name));
            if everywhere {
                split.outer.push(attr.clone());
                split.inner.push(attr.clone());
                split.shared.push(attr.clone());
            } else if path.is_ident("expect") {
                let mut allow = attr.clone();
                if let Meta::List(list) = &mut allow.meta {
                    list.path = Ident::new("allow", list.path.span()).into();
                }
                split.inner.push(attr.clone());
                split.outer.push(allow.clone());
                split.shared.push(allow);
            } else {
                split.outer.push(attr.clone());
            }
        }
        split
    }
}

// Every identifier in `tokens`, as written (raw prefix removed).
fn collect_idents(tokens: TokenStream, into: &mut std::collections::HashSet<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(ident) => {
                into.insert(ident.unraw().to_string());
            }
            TokenTree::Group(group) => collect_idents(group.stream(), into),
            _ => {}
        }
    }
}
