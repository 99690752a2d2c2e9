//! Redis and Redis Cluster backend.
