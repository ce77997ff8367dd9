//! `hisn vault` tests.
