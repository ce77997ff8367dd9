//! Group commit for the PostgreSQL store (placeholder, being written).
