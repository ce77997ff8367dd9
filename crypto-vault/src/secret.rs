//! Types holding secret material: they zeroize on drop and never print it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::rng;

/// Length in bytes of every symmetric key in this crate (AES-256, HMAC-SHA256).
pub const KEY_LEN: usize = 32;

/// Decrypted bytes. Zeroized on drop; `Debug` shows only the length.
#[derive(Clone, Default)]
pub struct Plaintext(Vec<u8>);

impl Zeroize for Plaintext {
    fn zeroize(&mut self) {
        // `zeroize_bytes` is a memset behind an optimisation barrier: the same
        // guarantee as `Vec::zeroize`, without a volatile write per byte (which
        // cost ~25% of a 64 KiB decryption). Spare capacity is zeroed too.
        self.0.resize(self.0.capacity(), 0);
        zeroize::zeroize_bytes(&mut self.0);
        self.0.clear();
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Plaintext {}

impl Plaintext {
    /// Wrap bytes as a plaintext.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8, if they are.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Move the bytes out in a container that zeroizes on drop.
    pub fn into_zeroizing(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.0))
    }
}

impl From<&[u8]> for Plaintext {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl From<&str> for Plaintext {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl PartialEq for Plaintext {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([REDACTED; {} bytes])", self.0.len())
    }
}

/// A 256-bit symmetric key. Zeroized on drop, compared in constant time, never
/// printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`Error::Rng`] if the OS generator fails.
    pub fn generate() -> Result<Self> {
        let mut k = [0u8; KEY_LEN];
        rng::os_fill(&mut k)?;
        Ok(Self(k))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key from a slice of exactly [`KEY_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the length is wrong.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKey("key must be 32 bytes"))?;
        Ok(Self(arr))
    }

    /// A key from standard base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim().as_bytes())
                .map_err(|_| Error::InvalidKey("key is not valid base64"))?,
        );
        Self::from_slice(&bytes)
    }

    /// The key as standard base64, in a string that zeroizes on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// The raw key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// The master key: wraps (encrypts) every tenant's data and index keys.
///
/// Obtain it from a [`crate::KeyProvider`]. It never encrypts field values itself.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    key: SecretKey,
    fingerprint: [u8; 8],
}

impl MasterKey {
    /// A master key from a secret key.
    pub fn new(key: SecretKey) -> Self {
        let fingerprint = crate::wrap::fingerprint(&key);
        Self { key, fingerprint }
    }

    /// A fresh random master key.
    ///
    /// # Errors
    /// [`Error::Rng`] if the OS generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self::new(SecretKey::generate()?))
    }

    /// A master key from standard base64 of 32 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] on bad input.
    pub fn from_base64(text: &str) -> Result<Self> {
        Ok(Self::new(SecretKey::from_base64(text)?))
    }

    /// The key as standard base64 (zeroized on drop). Print it only when minting.
    pub fn to_base64(&self) -> Zeroizing<String> {
        self.key.to_base64()
    }

    /// A public 8-byte fingerprint (HMAC of a fixed label under the key) stored
    /// beside each wrapped key, so that the right master key is chosen during a
    /// master-key rotation. It reveals nothing about the key.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.key
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_length_check() {
        let k = SecretKey::generate().unwrap();
        let b64 = k.to_base64();
        assert_eq!(SecretKey::from_base64(&b64).unwrap(), k);
        assert!(matches!(
            SecretKey::from_base64("AAAA"),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            SecretKey::from_base64("!!"),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn plaintext_zeroize_empties_it() {
        let mut p = Plaintext::new(b"secret".to_vec());
        p.zeroize();
        assert!(p.is_empty());
        assert_eq!(p, Plaintext::default());
        assert_eq!(Plaintext::from("ab").into_zeroizing().as_slice(), b"ab");
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = SecretKey::from_bytes([0xAB; 32]);
        let s = format!("{k:?} {:?}", MasterKey::new(k.clone()));
        assert!(!s.to_lowercase().contains("abab"), "{s}");
        assert!(!s.contains("171"), "{s}");
        let p = Plaintext::from("sentinel");
        assert_eq!(format!("{p:?}"), "Plaintext([REDACTED; 8 bytes])");
    }
}
