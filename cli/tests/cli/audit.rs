//! `hisn audit` tests.
