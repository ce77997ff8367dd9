//! `hisn guard` tests.
