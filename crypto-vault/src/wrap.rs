//! Envelope encryption of tenant keys under the master key.
//!
//! Wrapped key (61 bytes): `version (1) || nonce (12) || AES-256-GCM(key) (32) || tag (16)`,
//! with associated data `lp32("hisn-vault/wrap") || version || lp32(purpose) || lp32(tenant) || key id (u32 BE)`,
//! where `lp32(x)` is `x`'s length as a four-byte big-endian integer followed by
//! `x` ([`push_lp`]), so a wrapped key copied to another tenant, key id or purpose
//! fails to unwrap. Known-answer vectors: `tests/data/hisn_vault_wrap_v1_kat_pass.json`.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::format::{KeyId, NONCE_LEN, TAG_LEN, push_lp};
use crate::secret::{KEY_LEN, MasterKey, SecretKey};

/// Version byte of the wrapped-key format.
pub const WRAP_VERSION: u8 = 1;
/// Length of a wrapped key.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// What a tenant key is for. Part of the wrapping AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// AES-256-GCM data key for field values.
    Data,
    /// Root key from which blind-index keys are derived (HKDF per table and column).
    BlindIndex,
}

impl KeyPurpose {
    /// Stable name, stored beside the key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::BlindIndex => "index",
        }
    }

    /// Parse [`KeyPurpose::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "data" => Some(Self::Data),
            "index" => Some(Self::BlindIndex),
            _ => None,
        }
    }
}

pub(crate) fn fingerprint(key: &SecretKey) -> [u8; 8] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"hisn-vault/master-fingerprint/v1");
    let out = mac.finalize().into_bytes();
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&out[..8]);
    fp
}

// HMAC accepts keys of any length, so construction cannot fail; keep the
// type-level fallibility out of the callers without a panic path.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn wrap_aad(purpose: KeyPurpose, tenant: &str, key_id: KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(48 + tenant.len());
    push_lp(&mut aad, b"hisn-vault/wrap");
    aad.push(WRAP_VERSION);
    push_lp(&mut aad, purpose.as_str().as_bytes());
    push_lp(&mut aad, tenant.as_bytes());
    aad.extend_from_slice(&key_id.0.to_be_bytes());
    aad
}

fn master_cipher(master: &MasterKey) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(master.secret().expose_secret())
        .map_err(|_| Error::InvalidKey("master key length"))
}

/// Wrap `key` under `master` for (purpose, tenant, key id).
pub(crate) fn wrap(
    master: &MasterKey,
    purpose: KeyPurpose,
    tenant: &str,
    key_id: KeyId,
    key: &SecretKey,
) -> Result<Vec<u8>> {
    let cipher = master_cipher(master)?;
    let mut nonce = [0u8; NONCE_LEN];
    crate::rng::os_fill(&mut nonce)?;
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose_secret());
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &wrap_aad(purpose, tenant, key_id),
            (&mut out[1 + NONCE_LEN..]).into(),
        )
        .map_err(|_| Error::InvalidKey("wrap failed"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Unwrap a key wrapped by [`wrap`] with the same (purpose, tenant, key id).
pub(crate) fn unwrap(
    master: &MasterKey,
    purpose: KeyPurpose,
    tenant: &str,
    key_id: KeyId,
    wrapped: &[u8],
) -> Result<SecretKey> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(Error::Unwrap);
    }
    if wrapped[0] != WRAP_VERSION {
        return Err(Error::UnsupportedVersion(wrapped[0]));
    }
    let cipher = master_cipher(master)?;
    let nonce = Nonce::try_from(&wrapped[1..1 + NONCE_LEN]).map_err(|_| Error::Unwrap)?;
    let tag = Tag::try_from(&wrapped[1 + NONCE_LEN + KEY_LEN..]).map_err(|_| Error::Unwrap)?;
    let mut buf = [0u8; KEY_LEN];
    buf.copy_from_slice(&wrapped[1 + NONCE_LEN..1 + NONCE_LEN + KEY_LEN]);
    let res = cipher.decrypt_inout_detached(
        &nonce,
        &wrap_aad(purpose, tenant, key_id),
        buf.as_mut_slice().into(),
        &tag,
    );
    if res.is_err() {
        buf.zeroize();
        tracing::warn!(target: "hisn_crypto_vault", key_id = key_id.0, purpose = purpose.as_str(), "tenant key unwrap failed");
        return Err(Error::Unwrap);
    }
    let key = SecretKey::from_bytes(buf);
    buf.zeroize();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_are_bound_to_tenant_purpose_and_id() {
        let m = MasterKey::generate().unwrap();
        let k = SecretKey::generate().unwrap();
        let w = wrap(&m, KeyPurpose::Data, "a", KeyId(1), &k).unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(unwrap(&m, KeyPurpose::Data, "a", KeyId(1), &w).unwrap(), k);
        assert!(matches!(
            unwrap(&m, KeyPurpose::Data, "b", KeyId(1), &w),
            Err(Error::Unwrap)
        ));
        assert!(matches!(
            unwrap(&m, KeyPurpose::Data, "a", KeyId(2), &w),
            Err(Error::Unwrap)
        ));
        assert!(matches!(
            unwrap(&m, KeyPurpose::BlindIndex, "a", KeyId(1), &w),
            Err(Error::Unwrap)
        ));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            unwrap(&other, KeyPurpose::Data, "a", KeyId(1), &w),
            Err(Error::Unwrap)
        ));
        assert_ne!(m.fingerprint(), other.fingerprint());
    }
}
