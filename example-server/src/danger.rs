//! Dangerous: start the server with an isolation layer switched off.
//!
//! Nothing here is reachable from the command line, the environment or the
//! config file: it exists for the cross-tenant isolation suite, which proves
//! that each layer holds *alone* (PostgreSQL with the query guard off: RLS
//! alone; PostgreSQL without RLS: the guard alone). A production build never
//! calls it; [`crate::build`] always starts with every layer on.

use crate::app::{App, StartError};
use crate::config::Config;

/// Which tenant-isolation layers in the database are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    query_guard: bool,
    rls: bool,
}

impl Layers {
    /// Every layer (what [`crate::build`] uses).
    pub const ALL: Self = Self {
        query_guard: true,
        rls: true,
    };

    /// PostgreSQL with the query guard off: statements reach the database as
    /// the handlers wrote them (no tenant predicate), RLS alone scopes.
    pub fn without_query_guard() -> Self {
        Self {
            query_guard: false,
            rls: true,
        }
    }

    /// PostgreSQL without row-level security (not installed, not verified):
    /// the query guard alone scopes.
    pub fn without_rls() -> Self {
        Self {
            query_guard: true,
            rls: false,
        }
    }

    /// Whether the query guard is on.
    pub fn query_guard(self) -> bool {
        self.query_guard
    }

    /// Whether row-level security is installed and verified (PostgreSQL).
    pub fn rls(self) -> bool {
        self.rls
    }
}

/// [`crate::build`] with `layers`. Refused on SQLite (the guard is its only
/// layer) and with both layers off.
pub async fn build_with_layers(config: Config, layers: Layers) -> Result<App, StartError> {
    tracing::warn!(target: "hisn::example_server", ?layers, "DANGER: building the server with isolation layers switched off (tests only)");
    crate::app::build_with(config, layers).await
}
