//! Randomness.
//!
//! Nonces come from a per-thread ChaCha12 generator ([`rand::rngs::StdRng`])
//! seeded from the operating system and reseeded from it every
//! [`RESEED_AFTER_BYTES`] bytes: a `getrandom` system call per nonce would cost as
//! much as encrypting a small field. Keys come straight from the OS generator.
//! Every failure of the OS generator is an [`Error::Rng`]: nothing panics and
//! nothing is encrypted with a weak nonce.

use std::cell::RefCell;

use rand::rngs::{StdRng, SysRng};
use rand::{Rng as _, SeedableRng as _, TryRng as _};

use crate::error::{Error, Result};

/// Bytes drawn from one per-thread generator before it is reseeded from the OS.
pub const RESEED_AFTER_BYTES: u64 = 1 << 20;

struct ThreadGen {
    rng: StdRng,
    drawn: u64,
}

thread_local! {
    static GEN: RefCell<Option<ThreadGen>> = const { RefCell::new(None) };
}

/// Fill `buf` from the operating system's generator.
pub(crate) fn os_fill(buf: &mut [u8]) -> Result<()> {
    SysRng.try_fill_bytes(buf).map_err(|_| Error::Rng)
}

/// Fill `buf` from the per-thread userspace CSPRNG (for nonces, salts, ids).
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    GEN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let needs_seed = slot.as_ref().is_none_or(|g| g.drawn >= RESEED_AFTER_BYTES);
        if needs_seed {
            let rng = StdRng::try_from_rng(&mut SysRng).map_err(|_| Error::Rng)?;
            *slot = Some(ThreadGen { rng, drawn: 0 });
        }
        let g = slot.as_mut().ok_or(Error::Rng)?;
        g.rng.fill_bytes(buf);
        g.drawn = g
            .drawn
            .saturating_add(u64::try_from(buf.len()).unwrap_or(u64::MAX));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_and_reseed_happens() {
        let mut a = [0u8; 12];
        let mut b = [0u8; 12];
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        // Draw past the reseed threshold: still works, still distinct.
        let mut big = vec![0u8; 1 << 16];
        for _ in 0..20 {
            fill(&mut big).unwrap();
        }
        let mut c = [0u8; 12];
        fill(&mut c).unwrap();
        assert_ne!(c, a);
        GEN.with(|g| assert!(g.borrow().as_ref().unwrap().drawn < RESEED_AFTER_BYTES));
    }
}
