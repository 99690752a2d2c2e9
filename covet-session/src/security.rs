//! Security events, client binding and the client address.
//!
//! Every event is a `tracing` event under the target `covet::session` with
//! an `event` field naming it (`created`, `rotated`, `logged_in`,
//! `logged_out`, `expired`, `revoked`, `unknown_id`, `malformed_cookie`,
//! `binding_mismatch`, `csrf_rejected`, `oversized`, `guessing`) and, when
//! a session is involved, a `session` field: a salted hash of its id (a
//! per-process random salt unless
//! [`SessionConfig::with_event_salt`](crate::SessionConfig::with_event_salt)
//! sets one), never the id.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::config::SessionConfig;
use crate::id::SessionId;

/// The tracing target of every security event.
pub const EVENT_TARGET: &str = "covet::session";

/// How sessions are bound to the client that created them (hijack
/// detection), set with
/// [`SessionConfig::with_binding`](crate::SessionConfig::with_binding).
///
/// A session records, at creation and at login, a hash of the client's
/// `User-Agent` and of a prefix of its IP address (`/24` for IPv4, `/64` for
/// IPv6 by default). A later request from a client whose hash differs is a
/// mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Binding {
    /// No binding is recorded or checked.
    Off,
    /// The default: a mismatch emits a `binding_mismatch` event, and the
    /// request goes on with the session (mobile clients change addresses).
    #[default]
    Log,
    /// A mismatch deletes the session and the request goes on with a
    /// fresh, empty one (the handler sees an anonymous session).
    Strict,
}

/// An address range in CIDR form (`10.0.0.0/8`, `::1/128`, or a single
/// address), for [`SessionConfig::with_trusted_proxies`](crate::SessionConfig::with_trusted_proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    bits: u8,
}

impl IpRange {
    /// Parses `a.b.c.d/n`, `x::y/n` or a single address.
    ///
    /// ```
    /// use covet_session::IpRange;
    /// let r: IpRange = "10.0.0.0/8".parse().unwrap();
    /// assert!(r.contains("10.1.2.3".parse().unwrap()));
    /// assert!(!r.contains("11.0.0.1".parse().unwrap()));
    /// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = crate::error::ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || crate::error::ConfigError::InvalidAttribute {
            attribute: "trusted proxy",
            value: s.to_owned(),
        };
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if bits > max {
            return Err(bad());
        }
        Ok(IpRange { addr, bits })
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let full = bits / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy; then the rightmost `X-Forwarded-For` / `Forwarded` entry that is
/// not a trusted proxy (never the leftmost, which the client writes).
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[IpRange],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("forwarded") {
        let Ok(v) = v.to_str() else { continue };
        for element in v.split(',') {
            for pair in element.split(';') {
                if let Some((k, val)) = pair.split_once('=')
                    && k.trim().eq_ignore_ascii_case("for")
                    && let Some(ip) = parse_forwarded_ip(val)
                {
                    chain.push(ip);
                }
            }
        }
    }
    if chain.is_empty() {
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { continue };
            chain.extend(v.split(',').filter_map(|s| s.trim().parse::<IpAddr>().ok()));
        }
    }
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        let ip = canonical(ip);
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// An address in a `Forwarded: for=` value: `1.2.3.4`, `"1.2.3.4:80"`,
/// `"[::1]:80"`.
fn parse_forwarded_ip(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    v.rsplit_once(':')?.0.parse().ok()
}

/// Characters of a binding fingerprint: 16 bytes of SHA-256, URL-safe
/// base64 without padding.
const FINGERPRINT_LEN: usize = 22;

/// The binding fingerprint of a client: a hash of its `User-Agent` and of
/// its address's prefix (`None` when binding is off).
pub(crate) fn fingerprint(
    config: &SessionConfig,
    user_agent: Option<&http::HeaderValue>,
    ip: Option<IpAddr>,
) -> Option<String> {
    let mut buf = [0u8; FINGERPRINT_LEN];
    let text = fingerprint_into(config, user_agent, ip, &mut buf)?;
    Some(text.to_owned())
}

/// Whether this client's fingerprint is `stored` (`None` when binding is
/// off), without allocating: the load of every bound session asks.
pub(crate) fn fingerprint_matches(
    config: &SessionConfig,
    user_agent: Option<&http::HeaderValue>,
    ip: Option<IpAddr>,
    stored: &str,
) -> Option<bool> {
    let mut buf = [0u8; FINGERPRINT_LEN];
    let text = fingerprint_into(config, user_agent, ip, &mut buf)?;
    Some(text == stored)
}

/// Writes the fingerprint into `buf` and returns it as text.
fn fingerprint_into<'b>(
    config: &SessionConfig,
    user_agent: Option<&http::HeaderValue>,
    ip: Option<IpAddr>,
    buf: &'b mut [u8; FINGERPRINT_LEN],
) -> Option<&'b str> {
    if config.binding() == Binding::Off {
        return None;
    }
    let (v4, v6) = config.binding_prefixes();
    let mut h = Sha256::new();
    h.update(b"covet-binding\0");
    h.update(user_agent.map_or(&[][..], |v| v.as_bytes()));
    h.update(b"\0");
    if let Some(ip) = ip.map(canonical) {
        let mut octets = [0u8; 16];
        let masked = match ip {
            IpAddr::V4(v) => mask(&v.octets(), v4, &mut octets),
            IpAddr::V6(v) => mask(&v.octets(), v6, &mut octets),
        };
        h.update(masked);
    }
    let n = URL_SAFE_NO_PAD
        .encode_slice(&h.finalize()[..16], buf)
        .ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// The first `bits` of `octets` (the rest zeroed), in `out`.
fn mask<'o>(octets: &[u8], bits: u8, out: &'o mut [u8; 16]) -> &'o [u8] {
    let bits = usize::from(bits).min(octets.len() * 8);
    for (i, (o, b)) in out.iter_mut().zip(octets).enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        *o = if keep == 0 {
            0
        } else {
            b & (0xffu8 << (8 - keep))
        };
    }
    &out[..octets.len()]
}

static PROCESS_SALT: LazyLock<[u8; 16]> = LazyLock::new(|| {
    let mut salt = [0u8; 16];
    if getrandom::fill(&mut salt).is_err() {
        // Still a hash; only less private across processes.
        salt = *b"covet-event-salt";
    }
    salt
});

/// A salted hash of `id` for events and logs: never the id itself.
pub(crate) fn event_id(config: &SessionConfig, id: &SessionId) -> String {
    let mut h = Sha256::new();
    match config.event_salt() {
        Some(salt) => h.update(salt),
        None => h.update(*PROCESS_SALT),
    }
    h.update(id.expose().as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..12])
}

/// Emits one security event.
macro_rules! security_event {
    (warn, $event:expr, $($field:tt)*) => {
        tracing::warn!(target: $crate::security::EVENT_TARGET, event = $event, $($field)*)
    };
    (info, $event:expr, $($field:tt)*) => {
        tracing::info!(target: $crate::security::EVENT_TARGET, event = $event, $($field)*)
    };
}
pub(crate) use security_event;

/// A user's sessions were revoked (`delete_user_sessions`).
pub(crate) fn revoked(user_id: &str, count: u64) {
    let user = URL_SAFE_NO_PAD.encode(&Sha256::digest(user_id.as_bytes())[..9]);
    security_event!(
        info,
        "revoked",
        user = %user,
        sessions = count,
        "every session of a user was deleted"
    );
}

/// How many distinct unknown ids one client may present in a window before
/// a `guessing` warning.
const GUESS_LIMIT: usize = 20;
const GUESS_WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at once (the table is cleared past it).
const GUESS_CLIENTS: usize = 10_000;

struct Guesses {
    started: Instant,
    ids: Vec<[u8; 8]>,
    warned: bool,
}

static GUESSES: LazyLock<Mutex<HashMap<IpAddr, Guesses>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records that `client` presented an id no store knows; warns once per
/// window when one client presents many distinct ones (id guessing).
pub(crate) fn unknown_id(config: &SessionConfig, id: &SessionId, client: Option<IpAddr>) {
    config.counters.record(crate::stats::Event::UnknownId);
    let session = event_id(config, id);
    security_event!(info, "unknown_id", session = %session, "an unknown session id was presented");
    let Some(client) = client else { return };
    let mut key = [0u8; 8];
    key.copy_from_slice(&Sha256::digest(id.expose().as_bytes())[..8]);
    let mut table = GUESSES.lock();
    if table.len() >= GUESS_CLIENTS && !table.contains_key(&client) {
        table.clear();
    }
    let now = Instant::now();
    let g = table.entry(client).or_insert_with(|| Guesses {
        started: now,
        ids: Vec::new(),
        warned: false,
    });
    if now.duration_since(g.started) > GUESS_WINDOW {
        *g = Guesses {
            started: now,
            ids: Vec::new(),
            warned: false,
        };
    }
    if !g.ids.contains(&key) {
        g.ids.push(key);
    }
    if g.ids.len() >= GUESS_LIMIT && !g.warned {
        g.warned = true;
        let count = g.ids.len();
        drop(table);
        security_event!(
            warn,
            "guessing",
            client = %client,
            distinct_ids = count,
            "many unknown session ids from one client: someone may be guessing ids"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn client_ips_behind_trusted_proxies() {
        let trusted: Vec<IpRange> = vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let peer = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An untrusted peer is the client, whatever it forwards.
        assert_eq!(
            client_ip(
                peer("203.0.113.9"),
                &h(&[("x-forwarded-for", "1.1.1.1")]),
                &trusted
            ),
            ip("203.0.113.9")
        );
        // Behind a trusted proxy: the rightmost untrusted entry.
        assert_eq!(
            client_ip(
                peer("10.0.0.2"),
                &h(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.3")]),
                &trusted
            ),
            ip("198.51.100.7"),
            "never the leftmost, which the client wrote"
        );
        assert_eq!(
            client_ip(
                peer("::1"),
                &h(&[(
                    "forwarded",
                    "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https"
                )]),
                &trusted
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), &h(&[]), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(client_ip(None, &h(&[]), &trusted), None);
    }

    #[test]
    fn ranges() {
        let r: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(r.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!r.contains("2001:db9::1".parse().unwrap()));
        let r: IpRange = "192.168.1.0/25".parse().unwrap();
        assert!(r.contains("192.168.1.127".parse().unwrap()));
        assert!(!r.contains("192.168.1.128".parse().unwrap()));
        assert!(r.contains("::ffff:192.168.1.1".parse().unwrap()));
        for bad in ["", "1.2.3.4/", "1.2.3.4/40", "::/129", "host/8"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_follow_the_prefix_and_agent() {
        let c = SessionConfig::default();
        let ua = http::HeaderValue::from_static("firefox");
        let f = |ip: &str| fingerprint(&c, Some(&ua), Some(ip.parse().unwrap()));
        assert_eq!(f("198.51.100.7"), f("198.51.100.200"), "same /24");
        assert_ne!(f("198.51.100.7"), f("198.51.101.7"));
        assert_eq!(f("2001:db8:0:1::1"), f("2001:db8:0:1:ffff::2"), "same /64");
        assert_ne!(f("2001:db8:0:1::1"), f("2001:db8:0:2::1"));
        let other = http::HeaderValue::from_static("chrome");
        assert_ne!(
            fingerprint(&c, Some(&other), Some("198.51.100.7".parse().unwrap())),
            f("198.51.100.7")
        );
        let off = SessionConfig::default().with_binding(Binding::Off);
        assert_eq!(fingerprint(&off, Some(&ua), None), None);
        assert_eq!(fingerprint_matches(&off, Some(&ua), None, "x"), None);
        // Fingerprints stored by any version keep matching: SHA-256 of
        // "covet-binding\0", the agent, "\0" and the masked address.
        assert_eq!(f("198.51.100.7").unwrap(), "d2M-80X6UFkRdz_FeP9M-g");
        assert_eq!(f("2001:db8:0:1::1").unwrap(), "BMPQ6un69P9cTAtE1eYIZQ");
        for ip in [
            None,
            Some("198.51.100.7"),
            Some("2001:db8::1"),
            Some("::ffff:198.51.100.9"),
        ] {
            let ip = ip.map(|i| i.parse().unwrap());
            let fp = fingerprint(&c, Some(&ua), ip).unwrap();
            assert_eq!(fp.len(), FINGERPRINT_LEN);
            assert_eq!(fingerprint_matches(&c, Some(&ua), ip, &fp), Some(true));
            assert_eq!(fingerprint_matches(&c, None, ip, &fp), Some(false));
            assert_eq!(
                fingerprint_matches(&c, Some(&ua), ip, &fp[..21]),
                Some(false)
            );
        }
    }
}
