//! Subcommand groups, one module each; each module owns its group's
//! arguments (`<Group>Command`) and its `run` function.

pub(crate) mod apikey;
pub(crate) mod audit;
pub(crate) mod audit_repair;
pub(crate) mod guard;
pub(crate) mod keys;
pub(crate) mod password;
pub(crate) mod redact;
pub(crate) mod totp;
pub(crate) mod vault;
pub(crate) mod webhook;
