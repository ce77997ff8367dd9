//! PostgreSQL mode (`DATABASE_URL`): connection, migrations as the owner
//! role, row-level security installed with tenant-guard's `rls` module and
//! verified at start-up.
