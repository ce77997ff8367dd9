//! `hisn webhook` tests.
