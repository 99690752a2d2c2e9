//! Which server holds a key: rendezvous (highest random weight) hashing.
//! Every key goes to the server with the highest score of
//! `hash(server) ^ hash(key)`; adding a server moves only the keys it now
//! wins (about 1/n of them), removing one moves only its own keys.
//!
//! The hash is FNV-1a finished by the SplitMix64 mixer: stable across
//! processes, builds and versions, which a shared cache needs.

/// A stable 64-bit hash of `bytes`.
pub(super) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The index of the server (given by the hashes of their addresses) that
/// holds `key`.
pub(super) fn pick(servers: &[u64], key: &[u8]) -> usize {
    if servers.len() <= 1 {
        return 0;
    }
    let k = hash(key);
    let mut best = (0, 0u64);
    for (i, s) in servers.iter().enumerate() {
        let score = mix(s ^ k);
        if i == 0 || score > best.1 {
            best = (i, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| hash(format!("127.0.0.1:{}", 11211 + i).as_bytes()))
            .collect()
    }

    #[test]
    fn a_fourth_server_takes_about_a_quarter_of_the_keys_from_the_others() {
        let three = servers(3);
        let four = servers(4);
        let keys: Vec<String> = (0..20_000).map(|i| format!("ns:user:{i}")).collect();
        let mut moved = 0;
        let mut load = [0usize; 4];
        for k in &keys {
            let before = pick(&three, k.as_bytes());
            let after = pick(&four, k.as_bytes());
            load[after] += 1;
            if before != after {
                moved += 1;
                assert_eq!(after, 3, "a key only ever moves to the new server");
            }
        }
        let share = moved as f64 / keys.len() as f64;
        assert!((0.20..0.30).contains(&share), "moved {share}");
        for l in load {
            assert!((4000..6000).contains(&l), "{load:?}");
        }
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"ns:key"), hash(b"ns:key"));
        assert_ne!(hash(b"ns:key"), hash(b"ns:kez"));
        assert_eq!(pick(&[], b"x"), 0);
        assert_eq!(pick(&servers(1), b"x"), 0);
    }
}
