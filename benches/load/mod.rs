//! The load loop of the throughput benches (`redis`, `backends`): `op`
//! looped by 64 tokio tasks for a while.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// Tasks that run the loop at once.
pub(crate) const TASKS: usize = 64;

/// Runs `op(task, iteration)` in a loop on [`TASKS`] tasks for `dur`;
/// returns the operations done and operations per second.
pub(crate) fn throughput<F, Fut>(rt: &Runtime, dur: Duration, op: F) -> (u64, f64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (op, stop, done) = (op.clone(), stop.clone(), done.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        op(t, i).await;
                        i += 1;
                        // An in-memory backend never waits: yield now and
                        // then so the timer (and the other tasks) run.
                        if i.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                    }
                    done.fetch_add(i, Ordering::Relaxed);
                })
            })
            .collect();
        tokio::time::sleep(dur).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("bench task");
        }
        let n = done.load(Ordering::Relaxed);
        (n, n as f64 / start.elapsed().as_secs_f64())
    })
}
