// `#[cached(local)]` and sync fns: a typed memo per fn in this process
// (`covet::cache::LocalMemo`), keyed by the arguments themselves (or the
// rendered `key` template), with the companions of the shared path.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::FnArg;
use syn::ext::IdentExt;

use super::{Expander, Frame, Input, OFF};
use crate::cached::args::{MaxBytes, TtlArg};
use crate::cached::validate::Mode;

impl Expander<'_> {
    pub(super) fn local_items(&self) -> TokenStream {
        let Input {
            func,
            checked,
            args,
            ..
        } = self.input;
        let vis = &func.vis;
        let private = &self.private;
        let name = &func.sig.ident;
        let frame = self.frame();
        let memo_name = format_ident!("__covet_{}_memo", name.unraw());
        let memo_path = self.site_path(&memo_name);
        let key_ty = self.local_key_type();
        let value_ty = &checked.value_ty;
        let mut builder = quote!(#private::LocalMemo::builder());
        if let Some(max) = &args.max_entries {
            let max = max.0;
            builder.extend(quote!(.max_entries(#max)));
        }
        if let Some(max) = &args.max_bytes {
            let bytes = match &**max {
                MaxBytes::Bytes(n) => quote!(#n),
                MaxBytes::Expr(expr) => quote!(#expr),
            };
            builder.extend(match &args.weigher {
                Some(weigh) => quote! {
                    .max_bytes_with(#bytes, |_: &#key_ty, __covet_v: &#value_ty| {
                        ::core::mem::size_of::<#key_ty>().saturating_add(#weigh(__covet_v))
                    })
                },
                None => quote_spanned!(max.span()=> .max_bytes(#bytes)),
            });
        }
        match &args.ttl {
            Some(TtlArg::Millis(ms)) => {
                builder.extend(quote!(.ttl(::core::time::Duration::from_millis(#ms))));
            }
            Some(TtlArg::Expr(expr)) => builder.extend(quote!(.ttl(#private::ttl_of(#expr)))),
            _ => {}
        }
        builder.extend(self.local_value_ttl());
        let window = |ms: u64| quote!(::core::time::Duration::from_millis(#ms));
        if let Some(w) = &args.stale_while_revalidate {
            let d = window(w.millis);
            builder.extend(quote!(.stale_while_revalidate(#d)));
        }
        if let Some(w) = &args.stale_if_error {
            let d = window(w.millis);
            builder.extend(quote!(.stale_if_error(#d)));
        }
        if let Some(w) = &args.refresh_ahead {
            let d = window(w.millis);
            builder.extend(quote!(.refresh_ahead(#d)));
        }
        if let Some(j) = &args.jitter {
            let permille = proc_macro2::Literal::u16_unsuffixed(j.permille);
            builder.extend(quote!(.jitter(#permille)));
        }

        let body = self.local_body(false);
        let companions = if args.companions() {
            self.local_companions(&frame, &memo_path)
        } else {
            TokenStream::new()
        };
        let memo_fn = quote! {
            #[doc(hidden)]
            #[inline]
            #[allow(non_snake_case, dead_code)]
            #vis fn #memo_name() -> &'static #private::LocalMemo<#key_ty, #value_ty> {
                static __COVET_MEMO: ::std::sync::LazyLock<#private::LocalMemo<#key_ty, #value_ty>> =
                    ::std::sync::LazyLock::new(|| #builder.build());
                &__COVET_MEMO
            }
        };
        let fns = frame.fns(func, &memo_fn, &body);
        quote! {
            #fns
            #companions
        }
    }

    // `.value_ttl(..)` of the memo: `value_ttl = path` for positive values,
    // the own TTL of `cache_none` / `cache_err` for stored failures.
    fn local_value_ttl(&self) -> TokenStream {
        let Input {
            func,
            checked,
            args,
            ..
        } = self.input;
        let private = &self.private;
        let negative = args
            .cache_none
            .as_ref()
            .or(args.cache_err.as_ref())
            .and_then(|n| n.ttl);
        if negative.is_none() && args.value_ttl.is_none() {
            return TokenStream::new();
        }
        let value_ty = &checked.value_ty;
        let ret_ty = match &func.sig.output {
            syn::ReturnType::Type(_, ty) => quote!(#ty),
            syn::ReturnType::Default => quote!(()),
        };
        let shape = self.local_shape();
        let positive = match &args.value_ttl {
            Some(path) => quote!(#path(__covet_p)),
            None => quote!({
                let _ = __covet_p;
                ::core::option::Option::None
            }),
        };
        let failed = match negative {
            Some(w) => {
                let ms = w.millis;
                quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms)))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            .value_ttl(|__covet_v: &#value_ty| {
                match <_ as #private::Shape<#value_ty, #ret_ty>>::positive(#shape, __covet_v) {
                    ::core::option::Option::Some(__covet_p) => #positive,
                    ::core::option::Option::None => #failed,
                }
            })
        }
    }

    // How an async local memo refreshes: on a spawned task when the
    // arguments are owned (spanned on the option, where a body that is not
    // `Send` is reported), else in the call.
    fn local_launch(&self) -> (TokenStream, proc_macro2::Span) {
        let Input { checked, args, .. } = self.input;
        let private = &self.private;
        let span = args
            .stale_while_revalidate
            .as_ref()
            .map(|w| w.span)
            .or(args.refresh_ahead.as_ref().map(|w| w.span))
            .unwrap_or_else(proc_macro2::Span::call_site);
        if checked.owned {
            (super::respan(quote!(#private::Spawn), span), span)
        } else {
            (quote!(#private::Inline), span)
        }
    }

    // `String` for a `key` template, else the tuple of the argument types.
    fn local_key_type(&self) -> TokenStream {
        if self.input.key.is_some() {
            return quote!(::std::string::String);
        }
        let types = self
            .input
            .checked
            .params
            .iter()
            .filter_map(|p| match &p.arg {
                FnArg::Typed(typed) => Some(&typed.ty),
                FnArg::Receiver(_) => None,
            });
        quote!((#(#types,)*))
    }

    // `let __covet_key = ...;`: the rendered template, or the arguments cloned.
    fn local_key(&self) -> TokenStream {
        let private = &self.private;
        if let Some(template) = &self.input.key {
            let write = template.write_statements(private);
            return quote! {
                let __covet_key: ::std::string::String = {
                    let mut __covet_key = #private::KeyBuf::bare();
                    #write
                    #private::KeyBuf::into_user_key(__covet_key)
                };
            };
        }
        let idents = self.input.checked.params.iter().map(|p| &p.ident);
        quote!(let __covet_key = (#(::core::clone::Clone::clone(&#idents),)*);)
    }

    fn local_shape(&self) -> TokenStream {
        let Input { checked, args, .. } = self.input;
        let private = &self.private;
        match checked.mode {
            Mode::Result if args.cache_err.is_some() => quote!(#private::ErrToo),
            Mode::Result => quote!(#private::OkPart(::core::option::Option::None)),
            Mode::Option if args.cache_none.is_some() => quote!(#private::NoneToo),
            Mode::Option => quote!(#private::SomePart),
            Mode::Plain => quote!(#private::Whole),
        }
    }

    // The wrapper's body (`status = false`) or `<fn>_with_status`'s.
    fn local_body(&self, status: bool) -> TokenStream {
        let Input { func, .. } = self.input;
        let private = &self.private;
        let root = &self.root;
        let name = &func.sig.ident;
        let site_path = self.site_path(&format_ident!("__covet_{}_site", name.unraw()));
        let memo_path = self.site_path(&format_ident!("__covet_{}_memo", name.unraw()));
        let owner = self.owner();
        let key = self.local_key();
        let shape = self.local_shape();
        let hit = self.hit_expr();
        let call = &self.call;
        let stamped = self.input.args.stamped();
        let fill = match (func.sig.asyncness.is_some(), stamped) {
            (true, false) => {
                quote!(__covet_memo.fill_shaped(__covet_key, ::core::option::Option::Some(__covet_site), move || #call, __covet_shape).await)
            }
            (false, false) => {
                quote!(__covet_memo.fill_shaped_sync(__covet_key, ::core::option::Option::Some(__covet_site), move || #call, __covet_shape))
            }
            (true, true) => {
                // Spanned on the option: a body that a background refresh
                // cannot move to another task is reported there.
                let (launch, span) = self.local_launch();
                quote_spanned!(span=> __covet_memo.around(__covet_key, __covet_site, __covet_found, move || #call, __covet_shape, #launch).await)
            }
            (false, true) => {
                quote!(__covet_memo.around_sync(__covet_key, __covet_site, __covet_found, move || #call, __covet_shape))
            }
        };
        let (ret_hit, ret) = if status {
            (quote!((#hit, #root::cache::CacheStatus::Hit)), fill)
        } else {
            (hit, quote!(#fill.0))
        };
        // With stale or refresh windows, the lookup says where the entry
        // is in its life; otherwise only whether it is fresh.
        // Without a template, the hit looks the arguments up borrowed (no
        // clone); the owned key is built on a miss only.
        let idents: Vec<_> = self.input.checked.params.iter().map(|p| &p.ident).collect();
        let (probe, key_first, key_after) = if self.input.key.is_some() || idents.is_empty() {
            (quote!(&__covet_key), key, TokenStream::new())
        } else {
            (
                quote!(&#private::ArgsRef((#(&#idents,)*))),
                TokenStream::new(),
                key,
            )
        };
        let check_hit = if stamped {
            quote! {
                let __covet_found = match __covet_memo.lookup(#probe).fresh() {
                    ::core::result::Result::Ok(__covet_hit) => {
                        __covet_site.hit(#owner);
                        return #ret_hit;
                    }
                    ::core::result::Result::Err(__covet_found) => __covet_found,
                };
            }
        } else {
            quote! {
                if let ::core::option::Option::Some(__covet_hit) = __covet_memo.get(#probe) {
                    __covet_site.hit(#owner);
                    return #ret_hit;
                }
            }
        };
        quote! {
            let __covet_site: &'static #private::FnSite = #site_path();
            let __covet_memo = #memo_path();
            #key_first
            #check_hit
            #key_after
            __covet_site.enter(#owner);
            let __covet_shape = #shape;
            #ret
        }
    }

    fn local_companions(&self, frame: &Frame<'_>, memo_path: &TokenStream) -> TokenStream {
        let sig = &self.input.func.sig;
        let vis = &self.input.func.vis;
        let private = &self.private;
        let root = &self.root;
        let asyncness = &sig.asyncness;
        let Frame {
            inputs,
            attrs,
            site_path,
            key_name,
            invalidate_name,
            clear_name,
            refresh_sig,
            link,
            ..
        } = frame;
        let shared_attrs = &attrs.shared;
        let key_doc = format!(" The key of [`{link}`] for these arguments.\n\n{OFF}");
        let invalidate_doc = format!(
            " Removes the memoized result of [`{link}`] for these arguments; whether there was \
             one.\n\n{OFF}"
        );
        let refresh_doc =
            format!(" Recomputes [`{link}`] for these arguments and memoizes the result.\n\n{OFF}");
        let status_doc = format!(" Calls [`{link}`] and says how the call was answered.\n\n{OFF}");
        let clear_doc =
            format!(" Removes every memoized result of [`{link}`]; how many there were.\n\n{OFF}");
        let key = self.local_key();
        let shape = self.local_shape();
        let call = &self.call;
        let call = if asyncness.is_some() {
            quote!(#call.await)
        } else {
            call.clone()
        };
        let status_body = self.local_body(true);
        let status_and_stats = frame.status_and_stats(vis, root, &status_doc, &status_body);
        // `_clear` and `_stats` take no arguments; methods keep `&self` off
        // them too (the memo is per fn, not per receiver).
        let key_fn = if let Some(template) = &self.input.key {
            let generics = &sig.generics;
            let write = template.write_statements(private);
            quote! {
                #(#shared_attrs)*
                #[doc = #key_doc]
                #[allow(dead_code, unused_variables, clippy::used_underscore_binding)]
                #vis fn #key_name #generics (#(#inputs),*) -> ::std::string::String {
                    let mut __covet_key = #private::KeyBuf::bare();
                    #write
                    #private::KeyBuf::into_user_key(__covet_key)
                }
            }
        } else {
            TokenStream::new()
        };
        quote! {
            #key_fn

            #(#shared_attrs)*
            #[doc = #invalidate_doc]
            #[allow(dead_code, unused_variables, clippy::used_underscore_binding, clippy::unused_async)]
            #vis #asyncness fn #invalidate_name (#(#inputs),*)
                -> ::core::result::Result<bool, #root::cache::Error>
            {
                #key
                ::core::result::Result::Ok(#memo_path().invalidate(&__covet_key))
            }

            #(#shared_attrs)*
            #[doc = #refresh_doc]
            #[allow(dead_code, clippy::used_underscore_binding)]
            #vis #refresh_sig {
                let __covet_site: &'static #private::FnSite = #site_path();
                #key
                let __covet_shape = #shape;
                let __covet_result = #call;
                #memo_path().store_shaped(__covet_key, __covet_site, __covet_result, __covet_shape)
            }

            #status_and_stats

            #(#shared_attrs)*
            #[doc = #clear_doc]
            #[allow(dead_code, clippy::unused_async)]
            #vis #asyncness fn #clear_name() -> ::core::result::Result<u64, #root::cache::Error> {
                let __covet_memo = #memo_path();
                let __covet_n = __covet_memo.len() as u64;
                __covet_memo.clear();
                ::core::result::Result::Ok(__covet_n)
            }
        }
    }
}
