//! How the HTTP and session benches order and summarize their interleaved
//! rounds.

/// Runs `rounds` rounds of `n` contenders, calling `one(contender)` for
/// each in turn: forward in even rounds, backward in odd ones. Over an
/// even number of rounds every contender runs as often after its left
/// neighbour as after its right one, so none always inherits the same
/// predecessor's state (its idle connections, a parked worker, the Redis
/// server's caches). `one` warms its contender up, then times it.
pub(crate) fn interleave(rounds: usize, n: usize, mut one: impl FnMut(usize)) {
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..n).collect();
        if !round.is_multiple_of(2) {
            order.reverse();
        }
        order.into_iter().for_each(&mut one);
    }
}

/// [`interleave`] with a warm-up: each turn runs contender `i` for
/// `warmup` (untimed: what `run` returns is dropped), then for `round`, and
/// keeps what `run` returns for that (a rate, or a time per call). Each
/// contender's figures, in round order.
pub(crate) fn warmed<T: Copy>(
    rounds: usize,
    n: usize,
    warmup: T,
    round: T,
    mut run: impl FnMut(usize, T) -> f64,
) -> Vec<Vec<f64>> {
    let mut all = vec![Vec::with_capacity(rounds); n];
    interleave(rounds, n, |i| {
        run(i, warmup);
        let figure = run(i, round);
        all[i].push(figure);
    });
    all
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

/// The highest of `samples` (the best round, for rates).
#[allow(dead_code)] // `session_layer` times calls: its best is the lowest
pub(crate) fn highest(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
