//! Layer 2: the SQL query guard that scopes every statement to the tenant.
