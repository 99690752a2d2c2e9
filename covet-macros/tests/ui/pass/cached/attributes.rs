#![deny(warnings)]
// User attributes: docs and other attributes stay on the fn, `cfg` applies to
// everything generated, `expect` is fulfilled by the body it is about.
#![deny(missing_docs)]
//! Crate docs.

/// Documented.
#[must_use]
#[expect(unused_variables, reason = "the body ignores `unused`")]
#[covet::cached]
pub async fn documented(x: u8, unused: u8) -> u8 {
    let ignored = 1;
    x
}

#[cfg(test)]
#[covet::cached]
async fn compiled_out(x: u8) -> u8 {
    does_not_exist(x)
}

#[cfg(not(test))]
#[covet::cached]
async fn compiled_in(x: u8) -> u8 {
    x
}

/// A unit return value is cached too (plain mode).
#[covet::cached]
pub async fn warm(_x: u8) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(documented(1, 2).await, 1);
    assert_eq!(compiled_in(3).await, 3);
    warm(1).await;
    warm(1).await;
}
