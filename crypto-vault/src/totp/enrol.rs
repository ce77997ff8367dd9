//! Enrolment and storage: a pending secret until the first valid code, then
//! an active one; both stored with the crate's field encryption.
//!
//! Sealed form (the plaintext of one field ciphertext, so bound to tenant,
//! table, column and row like every field value):
//! `version (0x01) | state (0x00 pending, 0x01 active) | algorithm (1 SHA-1,
//! 2 SHA-256, 3 SHA-512) | digits | period (u32 BE) | secret (16..=128 bytes)`.
//! The parameters travel with the secret under the same tag, so a database
//! writer cannot lower the digits or change the hash, and the state byte keeps
//! a pending secret from ever opening as an active one.

use std::fmt;

use zeroize::Zeroizing;

use super::code::Totp;
use super::uri::OtpAuthUri;
use super::{Algorithm, TotpParams, TotpSecret};
use crate::error::{Error, Result};
use crate::format::{Ciphertext, FieldContext};
use crate::keyring::Keyring;
use crate::store::KeyStore;
use crate::vault::Vault;

const SEALED_VERSION: u8 = 1;
const STATE_PENDING: u8 = 0;
const STATE_ACTIVE: u8 = 1;
const HEADER: usize = 8;

fn encode(totp: &Totp, state: u8) -> Zeroizing<Vec<u8>> {
    let p = totp.params();
    let secret = totp.secret().expose_secret();
    let mut out = Zeroizing::new(Vec::with_capacity(HEADER + secret.len()));
    out.extend_from_slice(&[SEALED_VERSION, state, p.algorithm().to_byte(), p.digits()]);
    out.extend_from_slice(&p.period().to_be_bytes());
    out.extend_from_slice(secret);
    out
}

fn decode(bytes: &[u8], want_state: u8) -> Result<Totp> {
    // The bytes were authenticated by the AEAD: a mismatch here is a value
    // sealed by another state or a future format, never attacker-chosen
    // bytes; it stays opaque all the same.
    if bytes.len() < HEADER || bytes[0] != SEALED_VERSION || bytes[1] != want_state {
        return Err(Error::Decrypt);
    }
    let algorithm = Algorithm::from_byte(bytes[2]).ok_or(Error::Decrypt)?;
    let period = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let params = TotpParams::new(algorithm, bytes[3], period).map_err(|_| Error::Decrypt)?;
    let secret = TotpSecret::from_bytes(&bytes[HEADER..]).map_err(|_| Error::Decrypt)?;
    Ok(Totp::new(secret, params))
}

/// A secret shown to the user but not yet confirmed by a valid code. It can
/// be sealed and opened as a pending record only; only
/// [`crate::totp::TotpVerifier::confirm`] turns it into an active [`Totp`].
#[derive(Clone)]
pub struct PendingTotp {
    totp: Totp,
}

impl fmt::Debug for PendingTotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingTotp")
            .field("totp", &self.totp)
            .finish()
    }
}

impl PendingTotp {
    /// Start an enrolment: a fresh secret of the hash's output length (at
    /// least 160 bits) from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::Rng`].
    pub fn generate(params: TotpParams) -> Result<Self> {
        let secret = TotpSecret::generate(params.algorithm())?;
        Ok(Self {
            totp: Totp::new(secret, params),
        })
    }

    /// The parameters.
    pub fn params(&self) -> TotpParams {
        self.totp.params()
    }

    /// The secret as base32, for manual entry in an app. Show it once.
    pub fn secret_base32(&self) -> Zeroizing<String> {
        self.totp.secret().to_base32()
    }

    /// The `otpauth://totp/` URI for authenticator apps (render it as a QR
    /// code). It holds the secret: show it once, never log it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an issuer or account that is empty, longer
    /// than [`crate::totp::MAX_LABEL_LEN`], or holds a colon or a control
    /// character.
    pub fn uri(&self, issuer: &str, account: &str) -> Result<Zeroizing<String>> {
        OtpAuthUri::new(issuer, account, self.totp.clone())?.to_uri()
    }

    /// Encrypt the pending secret for `ctx` with `keyring` (e.g. a column
    /// `totp_pending`).
    ///
    /// # Errors
    /// As [`Keyring::encrypt`].
    pub fn seal(&self, keyring: &Keyring, ctx: &FieldContext<'_>) -> Result<Ciphertext> {
        keyring.encrypt(ctx, &encode(&self.totp, STATE_PENDING))
    }

    /// Decrypt a pending secret sealed by [`PendingTotp::seal`] or
    /// [`PendingTotp::seal_in`].
    ///
    /// # Errors
    /// [`Error::Decrypt`] (opaque) for anything not sealed as pending at `ctx`,
    /// including an active record.
    pub fn open(keyring: &Keyring, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Self> {
        let pt = keyring.decrypt(ctx, ct)?;
        let totp = decode(pt.as_bytes(), STATE_PENDING)?;
        Ok(Self { totp })
    }

    /// [`PendingTotp::seal`] through a [`Vault`].
    ///
    /// # Errors
    /// As [`Vault::encrypt`].
    pub async fn seal_in<S: KeyStore>(
        &self,
        vault: &Vault<S>,
        ctx: &FieldContext<'_>,
    ) -> Result<Ciphertext> {
        vault.encrypt(ctx, &encode(&self.totp, STATE_PENDING)).await
    }

    /// [`PendingTotp::open`] through a [`Vault`].
    ///
    /// # Errors
    /// As [`Vault::decrypt`]; [`Error::Decrypt`] for a record not sealed as
    /// pending.
    pub async fn open_in<S: KeyStore>(
        vault: &Vault<S>,
        ctx: &FieldContext<'_>,
        ct: &Ciphertext,
    ) -> Result<Self> {
        let pt = vault.decrypt(ctx, ct).await?;
        let totp = decode(pt.as_bytes(), STATE_PENDING)?;
        Ok(Self { totp })
    }

    /// The credential a confirming code is checked against.
    pub(crate) fn to_candidate(&self) -> Totp {
        self.totp.clone()
    }
}

impl Totp {
    /// Encrypt this active credential (secret and parameters) for `ctx` with
    /// `keyring` (e.g. a column `totp_secret`).
    ///
    /// # Errors
    /// As [`Keyring::encrypt`].
    pub fn seal(&self, keyring: &Keyring, ctx: &FieldContext<'_>) -> Result<Ciphertext> {
        keyring.encrypt(ctx, &encode(self, STATE_ACTIVE))
    }

    /// Decrypt an active credential sealed by [`Totp::seal`] or
    /// [`Totp::seal_in`].
    ///
    /// # Errors
    /// [`Error::Decrypt`] (opaque) for anything not sealed as active at `ctx`,
    /// including a pending record.
    pub fn open(keyring: &Keyring, ctx: &FieldContext<'_>, ct: &Ciphertext) -> Result<Self> {
        let pt = keyring.decrypt(ctx, ct)?;
        decode(pt.as_bytes(), STATE_ACTIVE)
    }

    /// [`Totp::seal`] through a [`Vault`].
    ///
    /// # Errors
    /// As [`Vault::encrypt`].
    pub async fn seal_in<S: KeyStore>(
        &self,
        vault: &Vault<S>,
        ctx: &FieldContext<'_>,
    ) -> Result<Ciphertext> {
        vault.encrypt(ctx, &encode(self, STATE_ACTIVE)).await
    }

    /// [`Totp::open`] through a [`Vault`].
    ///
    /// # Errors
    /// As [`Vault::decrypt`]; [`Error::Decrypt`] for a record not sealed as
    /// active.
    pub async fn open_in<S: KeyStore>(
        vault: &Vault<S>,
        ctx: &FieldContext<'_>,
        ct: &Ciphertext,
    ) -> Result<Self> {
        let pt = vault.decrypt(ctx, ct).await?;
        decode(pt.as_bytes(), STATE_ACTIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KeyId;
    use crate::secret::SecretKey;

    fn ring() -> Keyring {
        Keyring::from_keys("t1", KeyId(1), [(KeyId(1), SecretKey::from_bytes([7; 32]))]).unwrap()
    }

    #[test]
    fn pending_and_active_never_cross() {
        let ring = ring();
        let ctx = FieldContext::new("t1", "mfa", "totp", "user-1").unwrap();
        let pending = PendingTotp::generate(TotpParams::DEFAULT).unwrap();
        let ct = pending.seal(&ring, &ctx).unwrap();
        assert!(!ct.to_text().contains(pending.secret_base32().as_str()));
        let back = PendingTotp::open(&ring, &ctx, &ct).unwrap();
        assert_eq!(back.to_candidate(), pending.to_candidate());
        assert!(matches!(Totp::open(&ring, &ctx, &ct), Err(Error::Decrypt)));

        let active = pending.to_candidate();
        let act = active.seal(&ring, &ctx).unwrap();
        assert_eq!(Totp::open(&ring, &ctx, &act).unwrap(), active);
        assert!(matches!(
            PendingTotp::open(&ring, &ctx, &act),
            Err(Error::Decrypt)
        ));
    }

    #[test]
    fn decode_refuses_bad_headers() {
        let t = PendingTotp::generate(TotpParams::DEFAULT)
            .unwrap()
            .to_candidate();
        let good = encode(&t, STATE_ACTIVE);
        assert_eq!(decode(&good, STATE_ACTIVE).unwrap(), t);
        for (i, v) in [(0usize, 2u8), (2, 9), (3, 5), (3, 9), (7, 0)] {
            let mut bad = good.to_vec();
            bad[i] = v;
            assert!(decode(&bad, STATE_ACTIVE).is_err(), "byte {i} = {v}");
        }
        assert!(decode(&good[..HEADER + 15], STATE_ACTIVE).is_err());
        assert!(decode(&[], STATE_ACTIVE).is_err());
    }
}
