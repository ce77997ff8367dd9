//! Integration tests of `hisn-crypto-vault`: one test binary, a module per area.
// Test code: unwrap/expect/panic are the assertion mechanism here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "suite/apikeys.rs"]
mod apikeys;
#[path = "suite/global_cap.rs"]
mod global_cap;
#[path = "suite/instances.rs"]
mod instances;
#[path = "suite/kat.rs"]
mod kat;
#[path = "suite/passwords_legacy.rs"]
mod passwords_legacy;
#[cfg(feature = "postgres")]
#[path = "suite/pg.rs"]
mod pg;
#[path = "suite/probe.rs"]
mod probe;
#[path = "suite/props.rs"]
mod props;
#[path = "suite/races.rs"]
mod races;
#[path = "suite/read_paths.rs"]
mod read_paths;
#[path = "suite/recovery.rs"]
mod recovery;
#[path = "suite/sentinel.rs"]
mod sentinel;
#[path = "suite/totp.rs"]
mod totp;
#[path = "suite/usage.rs"]
mod usage;
#[path = "suite/vault_flow.rs"]
mod vault_flow;
