//! Randomness, unique across threads, restarts and `fork()`.
//!
//! Two sources, chosen by what a repeat would cost and how often a value is drawn:
//!
//! - **Keys, password salts, API key ids and secrets, the dummy password** come
//!   straight from the operating system's generator ([`os_fill`], `getrandom`).
//!   No user-space state is involved, so a forked child can never repeat what
//!   its parent drew. These are drawn rarely (a salt costs nothing next to the
//!   argon2 hash it feeds).
//! - **Field nonces** ([`nonce_fill`]) are drawn on every encryption, where a
//!   `getrandom` system call would cost as much as the encryption itself (~0.5 µs
//!   measured on the bench machine against ~0.5 µs for a whole 256-byte
//!   encrypt + decrypt). They come from a per-thread ChaCha12 generator seeded
//!   from the OS, reseeded from the OS every [`RESEED_AFTER_BYTES`] bytes and
//!   **after every `fork()`**: the generator sits inside rand 0.8's
//!   `ReseedingRng`, which registers `pthread_atfork` handlers that bump a
//!   process-wide counter; every draw compares that counter with the one seen at
//!   the last seed and reseeds from the OS first if they differ (in parent and
//!   child alike, and again in a grandchild, whatever its pid). The generator
//!   hands out whole 16-byte blocks and every request consumes whole blocks, so
//!   no output buffered before a fork is ever handed out after it.
//!
//! A pid comparison was rejected: it costs a system call per nonce (~0.2 µs here)
//! and misses a grandchild that inherits an unused state and gets its
//! grandparent's pid back. The atfork counter costs one atomic load.
//!
//! Limits: a process created by a raw `clone(2)`/`fork` system call that bypasses
//! libc's `fork()` runs no atfork handlers and is not detected; do not encrypt
//! from inside an atfork handler. Every failure of the OS generator is an
//! [`Error::Rng`]: nothing panics and nothing is encrypted with a weak nonce.

use std::cell::{Cell, RefCell};

use rand::rngs::{StdRng, SysRng};
use rand::{Rng as _, SeedableRng as _, TryRng as _};
use rand_core06::block::BlockRngCore;
use rand08::rngs::adapter::ReseedingRng;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Bytes drawn from one per-thread nonce generator before it is reseeded from the OS.
pub const RESEED_AFTER_BYTES: u64 = 1 << 20;

/// Bytes handed out per generator block: every request consumes whole blocks.
const BLOCK: usize = 16;

/// ChaCha12 handing out one 16-byte block per `generate` call, so that the
/// reseeding wrapper checks for a fork before every block.
struct Block16(StdRng);

impl BlockRngCore for Block16 {
    type Item = u32;
    type Results = [u32; BLOCK / 4];

    fn generate(&mut self, results: &mut Self::Results) {
        let mut bytes = [0u8; BLOCK];
        self.0.fill_bytes(&mut bytes);
        for (word, chunk) in results.iter_mut().zip(bytes.chunks_exact(4)) {
            let mut w = [0u8; 4];
            w.copy_from_slice(chunk);
            *word = u32::from_le_bytes(w);
        }
        bytes.zeroize();
    }
}

impl rand_core06::SeedableRng for Block16 {
    type Seed = [u8; 32];

    fn from_seed(seed: Self::Seed) -> Self {
        Self(StdRng::from_seed(seed))
    }
}

thread_local! {
    /// Set when the OS generator failed during an automatic reseed: the draw
    /// that triggered it is refused and the generator rebuilt.
    static RESEED_FAILED: Cell<bool> = const { Cell::new(false) };
    static GEN: RefCell<Option<ReseedingRng<Block16, OsReseeder>>> = const { RefCell::new(None) };
}

/// The OS generator as a rand 0.8 reseeder. rand 0.8 panics when a reseed
/// fails, so this never reports failure to it: it records the failure in
/// [`RESEED_FAILED`] and [`nonce_fill`] refuses the draw (fail closed).
struct OsReseeder;

impl rand_core06::RngCore for OsReseeder {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if os_fill(dest).is_err() {
            dest.fill(0);
            RESEED_FAILED.with(|f| f.set(true));
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core06::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Fill `buf` from the operating system's generator (keys, salts, API keys).
pub(crate) fn os_fill(buf: &mut [u8]) -> Result<()> {
    SysRng.try_fill_bytes(buf).map_err(|_| Error::Rng)
}

fn new_generator() -> Result<ReseedingRng<Block16, OsReseeder>> {
    let mut seed = [0u8; 32];
    os_fill(&mut seed)?;
    let core = <Block16 as rand_core06::SeedableRng>::from_seed(seed);
    seed.zeroize();
    Ok(ReseedingRng::new(core, RESEED_AFTER_BYTES, OsReseeder))
}

/// Fill `buf` with nonce bytes from the per-thread, fork-aware generator.
pub(crate) fn nonce_fill(buf: &mut [u8]) -> Result<()> {
    GEN.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_generator()?);
        }
        let rng = slot.as_mut().ok_or(Error::Rng)?;
        let mut block = [0u8; BLOCK];
        for chunk in buf.chunks_mut(BLOCK) {
            rand_core06::RngCore::fill_bytes(rng, &mut block);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        block.zeroize();
        if RESEED_FAILED.with(|f| f.replace(false)) {
            *slot = None;
            buf.zeroize();
            return Err(Error::Rng);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_across_draws_and_reseeds() {
        let mut seen = std::collections::HashSet::new();
        let mut n = [0u8; 12];
        for _ in 0..64 {
            nonce_fill(&mut n).unwrap();
            assert!(seen.insert(n));
        }
        // Draw past the reseed threshold: still works, still distinct.
        let mut big = vec![0u8; 1 << 16];
        for _ in 0..20 {
            nonce_fill(&mut big).unwrap();
        }
        nonce_fill(&mut n).unwrap();
        assert!(seen.insert(n));
        // Odd lengths are served from whole blocks.
        let mut odd = [0u8; 17];
        nonce_fill(&mut odd).unwrap();
        assert_ne!(odd[..12], n);
    }

    #[test]
    fn os_fill_differs_per_call() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        os_fill(&mut a).unwrap();
        os_fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
