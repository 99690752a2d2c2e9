//! The shared session store conformance suite
//! (`covet_test::session_conformance`) against every store: one line each.
//! The stores are set up in `common::stores`.

mod common;

use common::stores;

covet_test::session_store_conformance!(memory, stores::memory());
covet_test::session_store_conformance!(cookie_encrypted, stores::cookie_encrypted());
covet_test::session_store_conformance!(cookie_signed, stores::cookie_signed());
covet_test::session_store_conformance!(cache_memory, stores::cache_memory());
#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_redis, stores::cache_redis());
#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_redis_cluster, stores::cache_redis_cluster());
#[cfg(feature = "redis")]
covet_test::session_store_conformance!(cache_tiered, stores::cache_tiered());
#[cfg(feature = "redis")]
covet_test::session_store_conformance!(redis_single, stores::redis_single());
#[cfg(feature = "redis")]
covet_test::session_store_conformance!(redis_cluster, stores::redis_cluster());
#[cfg(feature = "sql-postgres")]
covet_test::session_store_conformance!(sql_postgres, stores::sql_postgres());
#[cfg(feature = "sql-mysql")]
covet_test::session_store_conformance!(sql_mysql, stores::sql_mysql());
#[cfg(feature = "sql-sqlite")]
covet_test::session_store_conformance!(sql_sqlite, stores::sql_sqlite());
