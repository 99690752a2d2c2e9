//! Keys: validation, the allocation-free key buffer, and glob patterns.

use std::fmt;

use arrayvec::ArrayString;

use crate::error::Error;

/// Longest accepted user key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

const INLINE: usize = 120;

/// A full cache key (`namespace:` + user key) built without a heap
/// allocation while it fits in 120 bytes.
///
/// It implements [`fmt::Write`], so a key template renders straight into it;
/// the in-memory tier is looked up with [`KeyBuf::as_str`], and a `String`
/// is built only on the way to a remote tier.
///
/// ```
/// use std::fmt::Write;
/// use covet_cache::{Cache, KeyBuf};
/// let cache = Cache::builder().namespace("app").build().unwrap();
/// let mut key = KeyBuf::new(&cache);
/// write!(key, "user:{}", 7).unwrap();
/// assert_eq!(key.as_str(), "app:user:7");
/// assert_eq!(key.user_key(), "user:7");
/// ```
#[derive(Clone)]
pub struct KeyBuf {
    repr: Repr,
    prefix_len: usize,
}

#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE>),
    Heap(String),
}

impl KeyBuf {
    /// A key that starts with `cache`'s namespace prefix.
    pub fn new(cache: &crate::Cache) -> KeyBuf {
        KeyBuf::with_prefix(cache.prefix())
    }

    /// A key with no namespace prefix.
    pub fn bare() -> KeyBuf {
        KeyBuf {
            repr: Repr::Inline(ArrayString::new()),
            prefix_len: 0,
        }
    }

    pub(crate) fn with_prefix(prefix: &str) -> KeyBuf {
        let mut k = KeyBuf::bare();
        k.push_str(prefix);
        k.prefix_len = prefix.len();
        k
    }

    pub(crate) fn from_parts(prefix: &str, user_key: &str) -> KeyBuf {
        let mut k = KeyBuf::with_prefix(prefix);
        k.push_str(user_key);
        k
    }

    /// The whole key, namespace included.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.repr {
            Repr::Inline(s) => s.as_str(),
            Repr::Heap(s) => s.as_str(),
        }
    }

    /// The part after the namespace prefix.
    #[inline]
    pub fn user_key(&self) -> &str {
        &self.as_str()[self.prefix_len..]
    }

    /// The user key as an owned `String`.
    pub fn into_user_key(self) -> String {
        match self.repr {
            Repr::Heap(mut s) if self.prefix_len == 0 => {
                s.shrink_to_fit();
                s
            }
            other => {
                let k = KeyBuf {
                    repr: other,
                    prefix_len: self.prefix_len,
                };
                k.user_key().to_owned()
            }
        }
    }

    fn push_str(&mut self, s: &str) {
        match &mut self.repr {
            Repr::Inline(a) => {
                if a.try_push_str(s).is_err() {
                    let mut heap = String::with_capacity(a.len() + s.len() + 32);
                    heap.push_str(a.as_str());
                    heap.push_str(s);
                    self.repr = Repr::Heap(heap);
                }
            }
            Repr::Heap(h) => h.push_str(s),
        }
    }

    /// Checks the user part against the key rules.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_key(self.user_key())
    }
}

impl fmt::Write for KeyBuf {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a user key: 1 to 4096 bytes, no ASCII control characters.
pub(crate) fn validate_key(key: &str) -> Result<(), Error> {
    let reason = if key.is_empty() {
        "keys must not be empty"
    } else if key.len() > MAX_KEY_LEN {
        "keys must be at most 4096 bytes"
    } else if key.bytes().any(|b| b.is_ascii_control()) {
        "keys must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: key.chars().take(64).collect(),
        reason,
    })
}

/// Escapes glob metacharacters so `s` matches only itself.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A compiled glob pattern: `*` (any run), `?` (one character),
/// `[abc]`, `[a-z]`, `[!a]`/`[^a]` (classes) and `\x` (literal `x`).
/// The same syntax as Redis `SCAN MATCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    literal_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// ```
    /// use covet_cache::Glob;
    /// let g = Glob::new("user:[0-9]*").unwrap();
    /// assert!(g.matches("user:42"));
    /// assert!(!g.matches("user:x"));
    /// assert!(Glob::new("user:[").is_err());
    /// ```
    pub fn new(pattern: &str) -> Result<Glob, Error> {
        let bad = |reason| Error::InvalidPattern {
            pattern: pattern.chars().take(64).collect(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '\\' => match chars.next() {
                    Some(e) => tokens.push(Token::Lit(e)),
                    None => return Err(bad("a trailing `\\` escapes nothing")),
                },
                '[' => {
                    let negated = matches!(chars.peek(), Some('!' | '^'));
                    if negated {
                        chars.next();
                    }
                    let mut items = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        let lo = match c {
                            ']' => {
                                closed = true;
                                break;
                            }
                            '\\' => chars.next().ok_or_else(|| bad("unclosed `[`"))?,
                            c => c,
                        };
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some(']') | None => {
                                    // `[a-]`: a literal `-` at the end
                                    items.push((lo, lo));
                                    items.push(('-', '-'));
                                    closed = true;
                                    break;
                                }
                                Some('\\') => chars.next().ok_or_else(|| bad("unclosed `[`"))?,
                                Some(h) => h,
                            }
                        } else {
                            lo
                        };
                        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                        items.push((lo, hi));
                    }
                    if !closed {
                        return Err(bad("unclosed `[`"));
                    }
                    if items.is_empty() {
                        return Err(bad("empty character class `[]`"));
                    }
                    tokens.push(Token::Class { negated, items });
                }
                c => tokens.push(Token::Lit(c)),
            }
        }
        let literal_prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Lit(c) => Some(*c),
                _ => None,
            })
            .collect();
        Ok(Glob {
            tokens,
            literal_prefix,
        })
    }

    /// The literal text every match starts with.
    pub fn literal_prefix(&self) -> &str {
        &self.literal_prefix
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        if !text.starts_with(&self.literal_prefix) {
            return false;
        }
        let text: Vec<char> = text.chars().collect();
        let (mut t, mut p) = (0usize, 0usize);
        // position of the last `*` seen and the text index it was tried at
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            let step = match self.tokens.get(p) {
                Some(Token::Star) => {
                    backtrack = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(Token::Any) => true,
                Some(Token::Lit(c)) => *c == text[t],
                Some(Token::Class { negated, items }) => {
                    let hit = items.iter().any(|&(lo, hi)| lo <= text[t] && text[t] <= hi);
                    hit != *negated
                }
                None => false,
            };
            if step {
                t += 1;
                p += 1;
            } else if let Some((sp, st)) = backtrack {
                p = sp + 1;
                t = st + 1;
                backtrack = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn keybuf_inline_and_heap() {
        let mut k = KeyBuf::with_prefix("ns:");
        write!(k, "user:{}", 7).unwrap();
        assert_eq!(k.as_str(), "ns:user:7");
        assert_eq!(k.user_key(), "user:7");
        let long = "x".repeat(300);
        write!(k, "{long}").unwrap();
        assert_eq!(k.as_str().len(), 3 + 6 + 300);
        assert!(k.user_key().starts_with("user:7xxx"));
        assert_eq!(k.clone().into_user_key().len(), 306);
        let mut b = KeyBuf::bare();
        write!(b, "{long}").unwrap();
        assert_eq!(b.into_user_key(), long);
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key(&"k".repeat(4096)).is_ok());
        assert!(validate_key(&"k".repeat(4097)).is_err());
    }

    #[test]
    fn glob_matching() {
        let m = |p: &str, t: &str| Glob::new(p).unwrap().matches(t);
        assert!(m("user:*", "user:1"));
        assert!(m("user:*", "user:"));
        assert!(!m("user:*", "users:1"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a[bc]d", "acd"));
        assert!(!m("a[bc]d", "aed"));
        assert!(m("a[!bc]d", "aed"));
        assert!(m("a[^bc]d", "aed"));
        assert!(m("[a-c]*", "b-anything"));
        assert!(!m("[a-c]*", "d"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*:*:end", "a:b:c:end"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("é?", "éü"));
        assert!(m("[a-]", "-"));
        assert!(m("x[\\]]", "x]"));
    }

    #[test]
    fn glob_errors() {
        assert!(Glob::new("a[").is_err());
        assert!(Glob::new("a[bc").is_err());
        assert!(Glob::new("a\\").is_err());
        assert!(Glob::new("[]").is_err());
    }

    #[test]
    fn escape_round_trip() {
        let raw = "we*ird?[x]\\";
        assert!(Glob::new(&escape_glob(raw)).unwrap().matches(raw));
        assert!(
            !Glob::new(&escape_glob(raw))
                .unwrap()
                .matches("weXird?[x]\\")
        );
    }
}
