// Key and tag templates: "user:{user_id}", "team:{team.id}", "{{literal}}".
//
// A template becomes a `format_args!` call. Like thiserror's `{field}`, every
// placeholder expression is built with the string literal's span, so a
// missing `Display` impl is reported on the template.

use darling::Error;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, Index, LitStr, Member};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Key,
    Tag,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Key => "key template",
            Kind::Tag => "tag template",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Template {
    lit: LitStr,
    // `format_args!` string: `{}` per placeholder, literal braces doubled.
    format: String,
    // The literal text around the placeholders, braces unescaped: one more
    // piece than there are placeholders.
    pieces: Vec<String>,
    placeholders: Vec<Placeholder>,
}

// `{root.member.member}`; `root` is a parameter (or `self`) respelled with the
// literal's span.
#[derive(Debug, Clone)]
struct Placeholder {
    root: Ident,
    members: Vec<Member>,
}

impl Template {
    // Parses `lit` and resolves every placeholder against `params` (the fn's
    // parameter names, `self` first for methods). All errors of the template
    // are reported, except that parsing stops at an unclosed `{`.
    pub(crate) fn parse(lit: &LitStr, kind: Kind, params: &[Ident]) -> darling::Result<Self> {
        let text = lit.value();
        let span = lit.span();
        let noun = kind.noun();
        let mut errors = Error::accumulator();
        let mut format = String::with_capacity(text.len());
        let mut pieces = Vec::new();
        let mut piece = String::new();
        let mut placeholders = Vec::new();

        let mut rest = text.as_str();
        while let Some(pos) = rest.find(['{', '}']) {
            format.push_str(&rest[..pos]);
            piece.push_str(&rest[..pos]);
            let brace = &rest[pos..];
            if let Some(after) = brace
                .strip_prefix("{{")
                .or_else(|| brace.strip_prefix("}}"))
            {
                format.push_str(&brace[..2]);
                piece.push_str(&brace[..1]);
                rest = after;
                continue;
            }
            if let Some(after) = brace.strip_prefix('}') {
                errors.push(
                    Error::custom(format!(
                        "unmatched `}}` in {noun}; write `}}}}` for a literal `}}`"
                    ))
                    .with_span(&span),
                );
                rest = after;
                continue;
            }
            // An opening brace: the placeholder runs to the next `}`; another
            // `{` first means this one is never closed.
            let inner = &brace[1..];
            let Some(end) = inner
                .find(['{', '}'])
                .filter(|&i| inner[i..].starts_with('}'))
            else {
                errors.push(
                    Error::custom(format!(
                        "unclosed `{{` in {noun}; write `{{{{` for a literal `{{`"
                    ))
                    .with_span(&span),
                );
                rest = "";
                break;
            };
            let content = &inner[..end];
            rest = &inner[end + 1..];
            match parse_placeholder(content, noun, span, params) {
                Ok(placeholder) => {
                    format.push_str("{}");
                    pieces.push(std::mem::take(&mut piece));
                    placeholders.push(placeholder);
                }
                Err(msg) => errors.push(Error::custom(msg).with_span(&span)),
            }
        }
        format.push_str(rest);
        piece.push_str(rest);
        pieces.push(piece);

        errors.finish_with(Template {
            lit: lit.clone(),
            format,
            pieces,
            placeholders,
        })
    }

    // `"user:{}", user_id`: the arguments of `format_args!`/`format!`.
    pub(crate) fn format_args(&self) -> TokenStream {
        let format = LitStr::new(&self.format, self.lit.span());
        let args = &self.placeholders;
        quote!(#format #(, #args)*)
    }

    // Statements appending the rendered template to `__covet_key` without
    // `core::fmt` where the placeholder's type allows: literal pieces are
    // pushed as they are, and each placeholder goes through autoref
    // specialization (`WriteKeyFast` for integers and strings, otherwise
    // `WriteKeyDisplay`, spanned on the literal).
    pub(crate) fn write_statements(&self, private: &TokenStream) -> TokenStream {
        let span = self.lit.span();
        let mut out = TokenStream::new();
        for (i, piece) in self.pieces.iter().enumerate() {
            if !piece.is_empty() {
                let lit = LitStr::new(piece, span);
                out.extend(quote!(#private::KeyBuf::push_str(&mut __covet_key, #lit);));
            }
            if let Some(p) = self.placeholders.get(i) {
                // Bound first so the receiver is `&KeyPart<T>` without a
                // borrow that clippy would call needless.
                out.extend(quote_spanned!(span=>
                    let __covet_part = &#private::KeyPart(&(#p));
                    __covet_part.write_key(&mut __covet_key);
                ));
            }
        }
        quote! {{
            #[allow(unused_imports)]
            use #private::{WriteKeyDisplay as _, WriteKeyFast as _};
            #out
        }}
    }

    pub(crate) fn span(&self) -> Span {
        self.lit.span()
    }

    // The glob matching every rendering of the template: literal pieces
    // escaped, each placeholder `*`.
    pub(crate) fn glob(&self) -> String {
        let mut glob = String::new();
        // Adjacent placeholders need one `*`.
        let mut wild = false;
        for (i, piece) in self.pieces.iter().enumerate() {
            for c in piece.chars() {
                if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                    glob.push('\\');
                }
                glob.push(c);
                wild = false;
            }
            if i + 1 < self.pieces.len() && !wild {
                glob.push('*');
                wild = true;
            }
        }
        glob
    }
}

impl ToTokens for Placeholder {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let root = &self.root;
        let members = &self.members;
        tokens.extend(quote!(#root #(. #members)*));
    }
}

fn parse_placeholder(
    content: &str,
    noun: &str,
    span: Span,
    params: &[Ident],
) -> Result<Placeholder, String> {
    let example = match params.iter().find(|p| *p != "self") {
        Some(p) => format!("`{{{}}}`", p.unraw()),
        None => "`{name}`".to_owned(),
    };
    if content.is_empty() {
        return Err(format!(
            "empty placeholder `{{}}` in {noun}; name a parameter, e.g. {example}"
        ));
    }
    if content.contains(':') {
        return Err(format!(
            "format specs are not supported in {noun}s: `{{{content}}}`; placeholders are \
             written with `Display`"
        ));
    }
    if content.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "positional placeholder `{{{content}}}` in {noun}; name a parameter instead, e.g. \
             {example}"
        ));
    }
    let invalid = || {
        format!(
            "invalid placeholder `{{{content}}}` in {noun}; expected a parameter name, \
             optionally followed by fields: `{{name}}`, `{{name.field}}`"
        )
    };

    let mut parts = content.split('.');
    let root_name = parts.next().unwrap_or_default();
    if !is_ident(root_name) {
        return Err(invalid());
    }
    let mut members = Vec::new();
    for part in parts {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            let index = part.parse::<u32>().map_err(|_| invalid())?;
            members.push(Member::Unnamed(Index { index, span }));
        } else if is_ident(part) {
            let ident = syn::parse_str::<Ident>(part).map_err(|_| invalid())?;
            members.push(Member::Named(Ident::new(&ident.to_string(), span)));
        } else {
            return Err(invalid());
        }
    }

    let Some(param) = params.iter().find(|p| p.unraw() == root_name) else {
        let list = if params.is_empty() {
            "the function has no parameters".to_owned()
        } else {
            let names: Vec<String> = params.iter().map(|p| format!("`{}`", p.unraw())).collect();
            format!("parameters are: {}", names.join(", "))
        };
        return Err(format!("unknown parameter `{root_name}` in {noun}; {list}"));
    };
    let mut root = param.clone();
    root.set_span(span);
    Ok(Placeholder { root, members })
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    text != "_" && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn params(names: &[&str]) -> Vec<Ident> {
        names
            .iter()
            .map(|n| Ident::new(n, Span::call_site()))
            .collect()
    }

    fn ok(lit: LitStr, names: &[&str]) -> String {
        Template::parse(&lit, Kind::Key, &params(names))
            .unwrap()
            .format_args()
            .to_string()
    }

    fn err(lit: LitStr, names: &[&str]) -> Vec<String> {
        Template::parse(&lit, Kind::Key, &params(names))
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn plain_placeholder() {
        let out = ok(parse_quote!("user:{user_id}"), &["user_id"]);
        assert_eq!(out, quote!("user:{}", user_id).to_string());
    }

    #[test]
    fn no_placeholders() {
        assert_eq!(ok(parse_quote!("all"), &[]), quote!("all").to_string());
        assert_eq!(ok(parse_quote!(""), &["a"]), quote!("").to_string());
    }

    #[test]
    fn several_placeholders_and_fields() {
        let out = ok(
            parse_quote!("{team.id}/{user_id}:{a.b.c}-{pair.0}"),
            &["user_id", "team", "a", "pair"],
        );
        assert_eq!(
            out,
            quote!("{}/{}:{}-{}", team.id, user_id, a.b.c, pair.0).to_string()
        );
    }

    #[test]
    fn self_placeholder() {
        let out = ok(parse_quote!("{self.id}:{x}"), &["self", "x"]);
        assert_eq!(out, quote!("{}:{}", self.id, x).to_string());
    }

    #[test]
    fn escaped_braces_stay_escaped() {
        let out = ok(parse_quote!("{{lit}}:{x}}}"), &["x"]);
        assert_eq!(out, quote!("{{lit}}:{}}}", x).to_string());
        assert_eq!(ok(parse_quote!("{{}}"), &[]), quote!("{{}}").to_string());
    }

    #[test]
    fn raw_identifier_parameter() {
        let raw = Ident::new_raw("type", Span::call_site());
        let t = Template::parse(&parse_quote!("t:{type}"), Kind::Key, &[raw]).unwrap();
        assert_eq!(
            t.format_args().to_string(),
            quote!("t:{}", r#type).to_string()
        );
    }

    #[test]
    fn unknown_parameter_lists_the_parameters() {
        let e = err(parse_quote!("user:{usr_id}"), &["user_id", "name"]);
        assert_eq!(
            e,
            ["unknown parameter `usr_id` in key template; parameters are: `user_id`, `name`"]
        );
        let e = err(parse_quote!("{x}"), &[]);
        assert_eq!(
            e,
            ["unknown parameter `x` in key template; the function has no parameters"]
        );
        // `self` only exists in methods.
        let e = err(parse_quote!("{self.id}"), &["id"]);
        assert!(e[0].starts_with("unknown parameter `self`"));
    }

    #[test]
    fn every_unknown_parameter_is_reported() {
        let e = err(parse_quote!("{a}:{b}:{c}"), &["c"]);
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("`a`") && e[1].contains("`b`"));
    }

    #[test]
    fn unclosed_brace() {
        let e = err(parse_quote!("user:{user_id"), &["user_id"]);
        assert_eq!(
            e,
            ["unclosed `{` in key template; write `{{` for a literal `{`"]
        );
        let e = err(parse_quote!("user:{a{b}"), &["a"]);
        assert!(e[0].starts_with("unclosed `{`"));
        assert!(err(parse_quote!("{"), &[])[0].starts_with("unclosed `{`"));
    }

    #[test]
    fn stray_closing_brace() {
        let e = err(parse_quote!("user}:{x}"), &["x"]);
        assert_eq!(
            e,
            ["unmatched `}` in key template; write `}}` for a literal `}`"]
        );
        assert!(err(parse_quote!("}"), &[])[0].starts_with("unmatched `}`"));
    }

    #[test]
    fn empty_placeholder() {
        let e = err(parse_quote!("user:{}"), &["user_id"]);
        assert_eq!(
            e,
            ["empty placeholder `{}` in key template; name a parameter, e.g. `{user_id}`"]
        );
    }

    #[test]
    fn positional_placeholder() {
        let e = err(parse_quote!("user:{1}"), &["user_id"]);
        assert!(e[0].starts_with("positional placeholder `{1}` in key template"));
        assert!(e[0].contains("`{user_id}`"));
    }

    #[test]
    fn format_spec() {
        for lit in [
            parse_quote!("{x:?}"),
            parse_quote!("{x:>5}"),
            parse_quote!("{:?}"),
        ] {
            let e = err(lit, &["x"]);
            assert!(
                e[0].starts_with("format specs are not supported in key templates"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn invalid_names() {
        for lit in [
            parse_quote!("{a-b}"),
            parse_quote!("{ a }"),
            parse_quote!("{a.}"),
            parse_quote!("{.a}"),
            parse_quote!("{a..b}"),
            parse_quote!("{_}"),
            parse_quote!("{1a}"),
            parse_quote!("{a.fn}"),
        ] {
            let e = err(lit, &["a"]);
            assert!(e[0].starts_with("invalid placeholder"), "{e:?}");
        }
    }

    #[test]
    fn tag_messages_say_tag() {
        let e = Template::parse(&parse_quote!("{nope}"), Kind::Tag, &params(&["a"])).unwrap_err();
        assert!(e.to_string().contains("in tag template"));
    }

    #[test]
    fn placeholders_carry_the_literal_span() {
        let t = Template::parse(&parse_quote!("{a.b}"), Kind::Key, &params(&["a"])).unwrap();
        assert_eq!(t.placeholders.len(), 1);
        assert_eq!(t.placeholders[0].root, "a");
        assert_eq!(t.placeholders[0].to_token_stream().to_string(), "a . b");
    }
}
