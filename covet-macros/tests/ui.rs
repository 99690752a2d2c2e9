//! Compile tests of the proc macros: every documented option has a pass
//! case, every error message a fail case with its expected output.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and read the diff.

#[test]
fn cached() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/cached/*.rs");
    t.compile_fail("tests/ui/fail/cached/*.rs");
}

#[test]
fn session() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/session/*.rs");
    t.compile_fail("tests/ui/fail/session/*.rs");
}
