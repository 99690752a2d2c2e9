//! The shared session store conformance suite
//! (`covet_test::session_conformance`) against every store: one line each.

use std::sync::Arc;

#[allow(unused_imports)]
use covet::session::{MemoryStore, SessionStore};
#[allow(unused_imports)]
use covet_test::{Server, require};

covet_test::session_store_conformance!(memory, async {
    Some(Arc::new(MemoryStore::new()) as Arc<dyn SessionStore>)
});
