//! Replay-proof verification within a bounded window, on an injected clock.

use std::fmt;
use std::sync::Arc;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::code::{Totp, parse_code};
use super::enrol::PendingTotp;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};

/// Steps accepted on each side of the current one by default (RFC 6238 §5.2
/// recommends at most one step of delay): 3 codes are valid at any time.
pub const DEFAULT_WINDOW: u8 = 1;
/// Largest window [`TotpVerifier::with_window`] accepts: each extra step
/// adds two valid codes, and so doubles-and-more an attacker's odds per try.
pub const MAX_WINDOW: u8 = 4;
/// Tries per time step per account the caller's limiter should allow (5
/// per 30-second step for the default parameters). See the module docs for
/// the arithmetic: this limit alone still allows ~4% success per day.
pub const RECOMMENDED_TRIES_PER_STEP: u32 = 5;
/// Consecutive failures per account after which the caller should lock the
/// factor until recovery (NIST SP 800-63B §5.2.2): bounds an attacker's total
/// chance at 100 × 3 × 10⁻⁶ = 0.03% with the default window and 6 digits.
pub const RECOMMENDED_MAX_FAILURES: u32 = 100;

/// Verifies codes against the injected clock with a window of ±`window` steps.
/// Holds no secret; share one per service.
#[derive(Clone)]
pub struct TotpVerifier {
    clock: Arc<dyn Clock>,
    window: u8,
}

impl fmt::Debug for TotpVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpVerifier")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for TotpVerifier {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl TotpVerifier {
    /// A verifier reading `clock`, with the window [`DEFAULT_WINDOW`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            window: DEFAULT_WINDOW,
        }
    }

    /// Accept codes up to `window` steps before or after the current one
    /// (`0..=`[`MAX_WINDOW`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] above [`MAX_WINDOW`].
    pub fn with_window(mut self, window: u8) -> Result<Self> {
        if window > MAX_WINDOW {
            return Err(Error::InvalidConfig("TOTP window must be 0..=4 steps"));
        }
        self.window = window;
        Ok(self)
    }

    /// The window, in steps on each side.
    pub fn window(&self) -> u8 {
        self.window
    }

    /// Verify `code` for `totp` and return the time step it was accepted at:
    /// store it as the new last step (with a compare-and-set, see the module
    /// docs) and pass it as `last_step` next time. `last_step` is `None` only
    /// for a credential that never accepted a code.
    ///
    /// A code is accepted if it equals the code of a step within ±window of
    /// the clock's current step **and** that step is after `last_step`: a code
    /// at or before the last accepted step is refused, inside the window or
    /// not (no code is accepted twice). Every candidate in the window is
    /// computed and compared in constant time, with no early exit.
    ///
    /// # Rate limiting (the caller's job)
    /// Consult a limiter **before** calling: at most
    /// [`RECOMMENDED_TRIES_PER_STEP`] tries per account per time step, and
    /// lock the factor after [`RECOMMENDED_MAX_FAILURES`] consecutive
    /// failures. Count [`Error::TotpMalformed`] as a failure too. Without a
    /// limiter a 6-digit code falls to about 330,000 tries on average.
    ///
    /// # Errors
    /// [`Error::TotpMalformed`] for an input that is not a code (no HMAC is
    /// computed); [`Error::TotpRejected`] (opaque) for a wrong code, a replay,
    /// a code outside the window or a clock before 1970.
    pub fn verify(&self, totp: &Totp, code: &str, last_step: Option<u64>) -> Result<u64> {
        let digits = totp.params().digits();
        let value = parse_code(code, digits)?;
        let now = totp.step_at(self.clock.now()).inspect_err(|_| {
            tracing::warn!(target: "hisn::crypto_vault::totp", "clock before the Unix epoch: every code refused");
        })?;
        let w = u64::from(self.window);
        let first = now.saturating_sub(w);
        let last = now.saturating_add(w);
        let mut found = Choice::from(0);
        let mut replayed = Choice::from(0);
        let mut step = 0u64;
        for candidate in first..=last {
            let matches = totp.value_at_step(candidate).ct_eq(&value);
            // `last_step` is not secret: branching on it leaks nothing.
            let fresh = Choice::from(u8::from(last_step.is_none_or(|l| candidate > l)));
            let ok = matches & fresh;
            replayed |= matches & !fresh;
            // Steps rise through the loop: the latest matching step wins.
            step = u64::conditional_select(&step, &candidate, ok);
            found |= ok;
        }
        if bool::from(found) {
            Ok(step)
        } else {
            if bool::from(replayed) {
                tracing::warn!(target: "hisn::crypto_vault::totp", "one-time code replayed");
            } else {
                tracing::info!(target: "hisn::crypto_vault::totp", "one-time code rejected");
            }
            Err(Error::TotpRejected)
        }
    }

    /// Complete an enrolment: verify the first code for the pending secret
    /// and return the active credential with the step the code was accepted
    /// at (store both; the confirming code is then spent too). A wrong code
    /// leaves the pending secret as it was, for another try under the same
    /// limiter as [`TotpVerifier::verify`].
    ///
    /// # Errors
    /// As [`TotpVerifier::verify`].
    pub fn confirm(&self, pending: &PendingTotp, code: &str) -> Result<(Totp, u64)> {
        let totp = pending.to_candidate();
        let step = self.verify(&totp, code, None)?;
        Ok((totp, step))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::clock::ManualClock;
    use crate::totp::{TotpParams, TotpSecret};

    fn setup(at: u64) -> (ManualClock, TotpVerifier, Totp) {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(at));
        let v = TotpVerifier::new(Arc::new(clock.clone()));
        let t = Totp::new(
            TotpSecret::from_bytes(b"12345678901234567890").unwrap(),
            TotpParams::DEFAULT,
        );
        (clock, v, t)
    }

    #[test]
    fn window_bounds() {
        let (_, v, _) = setup(0);
        assert!(v.clone().with_window(5).is_err());
        assert_eq!(v.with_window(4).unwrap().window(), 4);
    }

    #[test]
    fn step_before_epoch_and_near_zero() {
        let (_, v, t) = setup(10);
        // At step 0 the window cannot go below 0.
        let code = t.code_at_step(0);
        assert_eq!(v.verify(&t, &code, None).unwrap(), 0);
        assert!(matches!(
            v.verify(&t, &code, Some(0)),
            Err(Error::TotpRejected)
        ));
    }
}
