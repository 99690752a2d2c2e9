//! Shared by the integration tests that use it (`mod common;`).

#![allow(dead_code)]

pub(crate) mod stores;
