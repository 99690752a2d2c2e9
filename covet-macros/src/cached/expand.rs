// Code generation: the user's fn becomes a private `__covet_<name>_uncached`
// with its body and spans untouched, a wrapper under the user's name that
// goes through the cache, and the `_key`, `_invalidate` and `_refresh`
// companions.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericParam, Ident, ItemFn, Meta, ReturnType};

use super::args::CachedArgs;
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

pub(crate) fn expand(input: &Input<'_>) -> TokenStream {
    let root = input.args.root();
    let expander = Expander {
        input,
        private: quote!(#root::__private),
        root,
        call: uncached_call(input),
    };
    expander.items()
}

impl Expander<'_> {
    fn items(&self) -> TokenStream {
        let Input { func, checked, .. } = self.input;
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = func;
        let private = &self.private;
        let root = &self.root;
        let name = &sig.ident;
        let generics = &sig.generics;
        let where_clause = &sig.generics.where_clause;
        let inputs: Vec<&FnArg> = checked
            .receiver
            .iter()
            .chain(checked.params.iter().map(|p| &p.arg))
            .collect();
        let attrs = SplitAttrs::new(attrs);
        let (outer_attrs, inner_attrs, shared_attrs) = (&attrs.outer, &attrs.inner, &attrs.shared);

        let mut inner_sig = sig.clone();
        inner_sig.ident = uncached_ident(name);
        let mut outer_sig = sig.clone();
        outer_sig.inputs = inputs.iter().copied().cloned().collect();
        let mut refresh_sig = outer_sig.clone();
        refresh_sig.ident = format_ident!("{}_refresh", name);
        let key_name = format_ident!("{}_key", name);
        let invalidate_name = format_ident!("{}_invalidate", name);

        let link = match &checked.receiver {
            Some(_) => format!("Self::{}", name.unraw()),
            None => name.unraw().to_string(),
        };
        let key_doc =
            format!(" Cache key of [`{link}`] for these arguments, without the cache's namespace.");
        let invalidate_doc = format!(
            " Removes the cached result of [`{link}`] for these arguments.\n\n Returns whether \
             an entry was removed."
        );
        let refresh_doc =
            format!(" Recomputes [`{link}`] for these arguments and stores the result.");

        let cache = self.cache_setup();
        let write_full_key = |on_failure| {
            let write = self.write_key(on_failure);
            quote! {
                let mut __covet_key = #private::KeyBuf::new(__covet_cache);
                #write
            }
        };
        let key_bypass = write_full_key(OnEncodeFailure::Bypass);
        let key_invalidate = write_full_key(OnEncodeFailure::NothingRemoved);
        let key_bare = self.write_key(OnEncodeFailure::Ignore);
        let spec = self.spec();
        let tags = self.tags();
        let call = &self.call;
        let (hit, fill, refresh) = match checked.mode {
            Mode::Result => (
                quote!(::core::result::Result::Ok(__covet_hit)),
                "fill_result",
                "refresh_result",
            ),
            Mode::Option => (
                quote!(::core::option::Option::Some(__covet_hit)),
                "fill_option",
                "refresh_option",
            ),
            Mode::Plain => (quote!(__covet_hit), "fill_plain", "refresh_plain"),
        };
        // Spanned on the return type: a value type that cannot be cached is
        // reported there.
        let ret_span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => Span::call_site(),
        };
        // The whole callee path carries the span: rustc reports an unmet
        // bound of a call on its path, once per span and fn, so `lookup` and
        // `fill_*` in the wrapper report a value type that cannot be cached
        // once, on the return type.
        let runtime_fn = |name: &str| {
            let name = Ident::new(name, ret_span);
            respan(quote!(#private::#name), ret_span)
        };
        let (lookup, fill, refresh) = (runtime_fn("lookup"), runtime_fn(fill), runtime_fn(refresh));
        let lookup = quote_spanned! {ret_span=>
            #lookup(__covet_cache, &__covet_key).await
        };
        let fill = if matches!(checked.mode, Mode::Result) {
            // How a failure reaches the callers that waited for it: chosen
            // at compile time (autoref), shared when the error is `Clone`.
            quote_spanned! {ret_span=>
                let __covet_fut = #call;
                let __covet_share = {
                    #[allow(unused_imports)]
                    use #private::{ShareClone as _, ShareNone as _};
                    (&&#private::Share::of(&__covet_fut)).sharer()
                };
                #fill(__covet_cache, __covet_key, &__COVET_SPEC, __covet_tags, __covet_fut, __covet_share).await
            }
        } else {
            quote_spanned! {ret_span=>
                #fill(__covet_cache, __covet_key, &__COVET_SPEC, __covet_tags, #call).await
            }
        };
        let refresh = quote_spanned! {ret_span=>
            #refresh(__covet_cache, __covet_key, &__COVET_SPEC, __covet_tags, #call).await
        };

        quote! {
            #(#inner_attrs)*
            #[doc(hidden)]
            #[allow(non_snake_case, dead_code, clippy::unused_async)]
            #inner_sig #block

            #(#outer_attrs)*
            #[allow(clippy::used_underscore_binding)]
            #vis #outer_sig {
                #cache
                #key_bypass
                #spec
                if let ::core::option::Option::Some(__covet_hit) = #lookup {
                    return #hit;
                }
                #tags
                #fill
            }

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
                #cache
                #key_bypass
                #spec
                #tags
                #refresh
            }
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
                    quote!(if !(#all) { return #call.await; })
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

    fn spec(&self) -> TokenStream {
        let private = &self.private;
        let ttl = match &self.input.args.ttl {
            Some(ttl) => {
                let millis = Literal::u64_unsuffixed(ttl.millis);
                quote!(::core::option::Option::Some(#millis))
            }
            None => quote!(::core::option::Option::None),
        };
        let lock = if self.input.args.lock.is_present() {
            quote!(.with_lock())
        } else {
            TokenStream::new()
        };
        quote!(static __COVET_SPEC: #private::Spec = #private::Spec::new(#ttl)#lock;)
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
