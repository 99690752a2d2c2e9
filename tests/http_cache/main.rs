//! The HTTP response cache over real HTTP: axum apps behind
//! `HttpCacheLayer` on a loopback listener, and a real client.
//!
//! Every handler counts how often it ran, so each test can tell a hit from
//! a trip to the origin. A response is stored in the background once its
//! body ended: tests wait for that with the layer's `settled()`, never
//! with a fixed sleep; the sleeps left wait for real time to pass (a
//! `max-age=1` response going stale).

#![cfg(all(feature = "http", feature = "axum", feature = "memory"))]

mod support;

mod conditional;
mod freshness;
mod invalidation;
mod policy;
mod range;
mod rfc;
mod security_credentials;
mod security_keys;
mod security_origin;
mod stale;
mod storing;
mod streaming;
mod targeted;
mod vary;

mod bounds;
mod head;
