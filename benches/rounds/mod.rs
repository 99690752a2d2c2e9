//! How the session benches order and summarize their interleaved rounds.

/// The contenders' order in round `round` of `n`: forward in even rounds,
/// backward in odd ones. Over an even number of rounds every contender
/// runs as often after its left neighbour as after its right one, so none
/// always inherits the same predecessor's state (its idle connections, a
/// parked worker, the Redis server's caches).
pub(crate) fn order(round: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if !round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// The median of `samples` (the mean of the two middle ones when their
/// number is even).
pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}
