//! Session metrics through the [`metrics`] facade (feature `metrics`):
//! `covet_sessions_total{event}` as events happen (see
//! [`SessionStats`](crate::SessionStats)), and `covet_sessions_active`,
//! sampled by [`publish_active`]. The names and labels are listed in
//! `covet::metrics`.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::store::SessionStore;

static STORES: Mutex<Vec<Weak<dyn SessionStore>>> = Mutex::new(Vec::new());

/// Records the store of a `SessionLayer`.
pub(crate) fn register(store: &Arc<dyn SessionStore>) {
    let mut stores = STORES.lock();
    stores.retain(|s| s.strong_count() > 0);
    if !stores
        .iter()
        .any(|s| std::ptr::addr_eq(s.as_ptr(), Arc::as_ptr(store)))
    {
        stores.push(Arc::downgrade(store));
    }
}

/// Counts the live sessions of every store behind a `SessionLayer`
/// ([`SessionStore::count`]; stores that cannot count, such as a
/// `CookieStore`, and stores that fail are left out) and sets the
/// `covet_sessions_active` gauge to the sum, which it returns. A count can
/// be a walk of the store (a `SCAN` in Redis): sample it every few
/// seconds, not per request.
pub async fn publish_active() -> u64 {
    let stores: Vec<_> = STORES.lock().iter().filter_map(Weak::upgrade).collect();
    let mut active = 0;
    for store in stores {
        match store.count().await {
            Ok(n) => active += n,
            Err(crate::Error::Unsupported { .. }) => {}
            Err(e) => {
                tracing::debug!(error = %e, "counting sessions failed; left out of covet_sessions_active")
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("covet_sessions_active").set(active as f64);
    active
}
