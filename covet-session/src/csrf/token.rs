//! The per-session CSRF secret and its masked tokens.
//!
//! The secret is 32 random bytes kept in the session. A token is 32 fresh
//! random bytes (the mask) followed by the secret XORed with the mask, in
//! URL-safe base64: every token differs (so a compressed response reveals
//! nothing about the secret, as in BREACH), and each one unmasks to the
//! secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::session::{CSRF_SECRET_KEY, Session};

/// Bytes of the secret and of the mask.
const SECRET_BYTES: usize = 32;

type Secret = [u8; SECRET_BYTES];

fn random() -> Result<Secret> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    Ok(bytes)
}

fn decode_secret(text: &str) -> Option<Secret> {
    let mut out = [0u8; SECRET_BYTES + 3];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
    (n == SECRET_BYTES).then(|| {
        let mut secret = [0u8; SECRET_BYTES];
        secret.copy_from_slice(&out[..SECRET_BYTES]);
        secret
    })
}

/// A masked token for `secret`.
fn mask(secret: &Secret) -> Result<String> {
    let pad = random()?;
    let mut out = [0u8; SECRET_BYTES * 2];
    out[..SECRET_BYTES].copy_from_slice(&pad);
    for i in 0..SECRET_BYTES {
        out[SECRET_BYTES + i] = pad[i] ^ secret[i];
    }
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Whether `token` is a masked form of `secret`, compared in constant time.
/// Anything else (the secret itself, garbage, another length) is `false`.
pub(crate) fn verify(token: &str, secret: &Secret) -> bool {
    let token = token.trim();
    if token.len() != 86 {
        return false;
    }
    let mut bytes = [0u8; SECRET_BYTES * 2 + 3];
    let Ok(n) = URL_SAFE_NO_PAD.decode_slice(token, &mut bytes) else {
        return false;
    };
    if n != SECRET_BYTES * 2 {
        return false;
    }
    let mut unmasked = [0u8; SECRET_BYTES];
    for i in 0..SECRET_BYTES {
        unmasked[i] = bytes[i] ^ bytes[SECRET_BYTES + i];
    }
    unmasked.ct_eq(secret).into()
}

impl Session {
    /// A CSRF token for a form or a header of this response: the session's
    /// CSRF secret (created on first use, also for an anonymous session, so
    /// a login form is protected) masked with fresh randomness, so two
    /// calls give different tokens that both verify. `CsrfLayer` checks it
    /// on unsafe requests; [`login`](Session::login) and
    /// [`cycle_id`](Session::cycle_id) rotate the secret.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use covet_session::{MemoryStore, Session, SessionConfig};
    /// let session = Session::new(Arc::new(MemoryStore::new()), &SessionConfig::default());
    /// let a = session.csrf_token().unwrap();
    /// let b = session.csrf_token().unwrap();
    /// assert_ne!(a, b, "masked afresh every time");
    /// assert_eq!(a.len(), 86);
    /// ```
    pub fn csrf_token(&self) -> Result<String> {
        let secret = match self.csrf_secret()? {
            Some(secret) => secret,
            None => {
                let secret = random()?;
                self.insert_internal(CSRF_SECRET_KEY, URL_SAFE_NO_PAD.encode(secret))?;
                secret
            }
        };
        mask(&secret)
    }

    /// The session's CSRF secret, if it has one.
    pub(crate) fn csrf_secret(&self) -> Result<Option<Secret>> {
        self.with_value(CSRF_SECRET_KEY, |v| {
            v.and_then(|v| v.as_str().and_then(decode_secret))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_tokens_verify_and_nothing_else_does() {
        let secret = random().unwrap();
        let other = random().unwrap();
        let a = mask(&secret).unwrap();
        let b = mask(&secret).unwrap();
        assert_ne!(a, b);
        assert!(verify(&a, &secret) && verify(&b, &secret));
        assert!(!verify(&a, &other), "another session's token");
        let raw = URL_SAFE_NO_PAD.encode(secret);
        assert!(!verify(&raw, &secret), "the unmasked secret");
        let zero_mask = URL_SAFE_NO_PAD.encode([[0u8; 32], secret].concat());
        assert!(verify(&zero_mask, &secret), "a zero mask is still a mask");
        let starred = format!("*{}", &a[1..]);
        for bad in ["", "x", &a[..85], &format!("{a}A"), &starred] {
            assert!(!verify(bad, &secret), "{bad:?}");
        }
        // Every flipped bit is refused.
        let bytes = URL_SAFE_NO_PAD.decode(&a).unwrap();
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let t = URL_SAFE_NO_PAD.encode(&flipped);
            assert!(!verify(&t, &secret), "bit {i}");
        }
    }
}
