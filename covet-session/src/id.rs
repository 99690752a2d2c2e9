//! Session ids: 256 random bits, URL-safe base64, stored only as a hash.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Number of random bytes in a session id (256 bits).
pub const ID_BYTES: usize = 32;
/// Length of the textual form: 32 bytes of URL-safe base64 without padding.
pub const ID_LEN: usize = 43;

/// A session id: 256 bits from the OS CSPRNG, written as 43 characters of
/// URL-safe base64 without padding.
///
/// Stores never key a session by the id itself but by
/// [`storage_key`](SessionId::storage_key), its SHA-256 hash, so a dump of
/// the store holds no usable id. `Debug` prints a redacted form, and there
/// is deliberately no `Display`: the cookie value is reached through
/// [`expose`](SessionId::expose) only.
///
/// A client-side store ([`CookieStore`](crate::CookieStore)) issues ids that
/// are the sealed session itself, longer than 43 characters; its
/// [`parse_id`](crate::SessionStore::parse_id) accepts them.
///
/// ```
/// use covet_session::SessionId;
/// let id = SessionId::generate().unwrap();
/// assert_eq!(id.expose().len(), 43);
/// let parsed: SessionId = id.expose().parse().unwrap();
/// assert_eq!(parsed, id);
/// assert_ne!(id.storage_key(), id.expose());
/// assert!(!format!("{id:?}").contains(id.expose()));
/// assert!("too-short".parse::<SessionId>().is_err());
/// ```
#[derive(Clone)]
pub struct SessionId {
    /// Shared: a clone costs a reference count, and the storage key is
    /// hashed once for every clone.
    inner: Arc<IdInner>,
}

struct IdInner {
    text: String,
    /// `storage_key`, computed on first use.
    key: OnceLock<String>,
    /// What the store that loaded this id keeps for it (the in-memory
    /// store's slot), so a save in the same request finds it again without
    /// a second lookup; tagged with that store's identity.
    #[cfg_attr(not(feature = "memory"), allow(dead_code))]
    memo: OnceLock<(u64, Arc<dyn std::any::Any + Send + Sync>)>,
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.inner.text == other.inner.text
    }
}

impl Eq for SessionId {}

impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.text.hash(state);
    }
}

impl SessionId {
    fn from_text(text: String) -> Self {
        SessionId {
            inner: Arc::new(IdInner {
                text,
                key: OnceLock::new(),
                memo: OnceLock::new(),
            }),
        }
    }
}

impl SessionId {
    /// A fresh id from the operating system's random generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
        Ok(SessionId::from_text(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// An id that is a whole sealed session (a client-side store's cookie
    /// value), taken as is: the store that issued it authenticates it.
    pub(crate) fn from_sealed(value: String) -> Self {
        SessionId::from_text(value)
    }

    /// The id as sent in the cookie. Treat it as a secret: do not log it.
    pub fn expose(&self) -> &str {
        &self.inner.text
    }

    /// The key stores file this session under: the lowercase hex SHA-256 of
    /// the id (64 characters). The id cannot be recovered from it. Computed
    /// once per id value.
    pub fn storage_key(&self) -> &str {
        self.inner.key.get_or_init(|| {
            let digest = Sha256::digest(self.inner.text.as_bytes());
            digest
                .iter()
                .flat_map(|&b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
                .map(char::from)
                .collect()
        })
    }
}

#[cfg_attr(not(feature = "memory"), allow(dead_code))]
impl SessionId {
    /// What store `owner` remembered for this id, if it did.
    pub(crate) fn memo(&self, owner: u64) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.inner
            .memo
            .get()
            .filter(|(o, _)| *o == owner)
            .map(|(_, m)| m)
    }

    /// Remembers `value` for store `owner` (the first store to do so wins).
    pub(crate) fn set_memo(&self, owner: u64, value: Arc<dyn std::any::Any + Send + Sync>) {
        let _ = self.inner.memo.set((owner, value));
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The 6-bit value of a URL-safe base64 character (already checked to be
/// one).
fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    }
}

impl FromStr for SessionId {
    type Err = Error;

    /// Accepts exactly 43 URL-safe base64 characters that decode to 32
    /// bytes in canonical form; anything else is [`Error::InvalidId`].
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != ID_LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidId);
        }
        // 43 characters carry 258 bits: the last one's two low bits are
        // padding and must be zero, so every id has exactly one accepted
        // spelling (what a strict base64 decoder checks, without decoding).
        let last = s.as_bytes()[ID_LEN - 1];
        if sextet(last) & 0b11 != 0 {
            return Err(Error::InvalidId);
        }
        Ok(SessionId::from_text(s.to_owned()))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first characters of the storage hash identify the session in
        // logs without revealing the id.
        write!(f, "SessionId(<redacted> key={}…)", &self.storage_key()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ID_LEN);
        assert_eq!(a.expose().parse::<SessionId>().unwrap(), a);
    }

    #[test]
    fn parsing_agrees_with_a_strict_decoder() {
        for last in (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .chain(b'0'..=b'9')
            .chain([b'-', b'_'])
        {
            let text = format!("{}{}", "Q".repeat(42), char::from(last));
            let decodes = URL_SAFE_NO_PAD
                .decode(&text)
                .is_ok_and(|b| b.len() == ID_BYTES);
            assert_eq!(text.parse::<SessionId>().is_ok(), decodes, "{text}");
        }
    }

    #[test]
    fn parsing_rejects_every_other_shape() {
        let id = SessionId::generate().unwrap();
        let good = id.expose();
        assert!(format!("{good}A").parse::<SessionId>().is_err());
        assert!(good[..42].parse::<SessionId>().is_err());
        assert!(format!("{}=", &good[..42]).parse::<SessionId>().is_err());
        assert!(format!("{}+", &good[..42]).parse::<SessionId>().is_err());
        assert!(format!("{}/", &good[..42]).parse::<SessionId>().is_err());
        assert!("".parse::<SessionId>().is_err());
        // Non-canonical trailing bits: 'B' sets a bit past the 256th.
        let all_a = "A".repeat(42);
        assert!(format!("{all_a}A").parse::<SessionId>().is_ok());
        assert!(format!("{all_a}B").parse::<SessionId>().is_err());
    }

    #[test]
    fn storage_key_is_a_hex_sha256_and_debug_is_redacted() {
        let id = SessionId::generate().unwrap();
        let k = id.storage_key();
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| HEX.contains(&b)));
        assert_eq!(k, id.storage_key());
        let fixed: SessionId = "A".repeat(43).parse().unwrap();
        assert_eq!(
            fixed.storage_key(),
            "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
        assert!(!format!("{id:?}").contains(id.expose()));
    }
}
