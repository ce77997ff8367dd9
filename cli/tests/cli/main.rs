//! Integration tests of the `hisn` binary: one binary, a module per group.

mod conventions;
mod webhook;
mod vault;
mod audit;
mod guard;
