//! Chapter 5's claims (docs/ch5-commit.md#claims--tests), proved against the
//! ch5 binary. The claims live in tests/lifecycle/, as functions of the
//! chapter binary, because every later chapter keeps ch5's lifecycle and
//! re-proves them against its own binary the same way.

mod lifecycle;
mod support;

use support::Chapter;

const CH5: Chapter = Chapter {
    bin: env!("CARGO_BIN_EXE_ch5-commit"),
    name: "ch5-commit",
};

lifecycle_claims!(CH5);
