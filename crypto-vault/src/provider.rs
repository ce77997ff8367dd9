//! Where the master key comes from.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::MasterKey;

/// A source of the master key. Environment variable and file implementations
/// are provided; a KMS or HSM plugs in by implementing this trait. It is async
/// so that such an implementation can make its network call (fetch the key, or
/// have the KMS unwrap a locally stored copy) without blocking the runtime.
/// Call it at start-up (and on master-key rotation) and give the key to
/// [`Vault::new`](crate::Vault::new).
///
/// ```
/// use hisn_crypto_vault::{Error, KeyProvider, MasterKey};
///
/// /// Stands in for a KMS client: `decrypt` would be a network call.
/// struct Kms { wrapped: String }
///
/// impl KeyProvider for Kms {
///     async fn master_key(&self) -> Result<MasterKey, Error> {
///         MasterKey::from_base64(&self.wrapped)
///     }
/// }
/// # let kms = Kms { wrapped: MasterKey::generate()?.to_base64().to_string() };
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let key = rt.block_on(kms.master_key())?;
/// # Ok::<(), Error>(())
/// ```
pub trait KeyProvider: Send + Sync {
    /// The current master key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key is missing or malformed; an
    /// implementation's own failure as an [`Error`].
    fn master_key(&self) -> impl Future<Output = Result<MasterKey>> + Send;
}

/// Reads the master key (standard base64 of 32 bytes) from an environment
/// variable, e.g. `HISN_MASTER_KEY`.
#[derive(Debug, Clone)]
pub struct EnvKeyProvider {
    var: String,
}

impl EnvKeyProvider {
    /// Default variable name.
    pub const DEFAULT_VAR: &'static str = "HISN_MASTER_KEY";

    /// Read from `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }
}

impl Default for EnvKeyProvider {
    fn default() -> Self {
        Self::new(Self::DEFAULT_VAR)
    }
}

impl KeyProvider for EnvKeyProvider {
    async fn master_key(&self) -> Result<MasterKey> {
        let v = Zeroizing::new(
            std::env::var(&self.var)
                .map_err(|_| Error::InvalidKey("master key variable is not set"))?,
        );
        MasterKey::from_base64(&v)
    }
}

/// Reads the master key (standard base64 of 32 bytes, surrounding whitespace
/// ignored) from a file. Keep the file readable by the service only.
#[derive(Clone)]
pub struct FileKeyProvider {
    path: PathBuf,
}

impl fmt::Debug for FileKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyProvider")
            .field("path", &self.path)
            .finish()
    }
}

impl FileKeyProvider {
    /// Largest file accepted (a base64 key is 44 bytes).
    pub const MAX_FILE_LEN: u64 = 4096;

    /// Read from `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl KeyProvider for FileKeyProvider {
    /// Reads a file of at most [`Self::MAX_FILE_LEN`] bytes with blocking I/O
    /// (once, at start-up).
    async fn master_key(&self) -> Result<MasterKey> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|_| Error::InvalidKey("master key file is unreadable"))?;
        if meta.len() > Self::MAX_FILE_LEN {
            return Err(Error::InvalidKey("master key file is too large"));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(&self.path)
                .map_err(|_| Error::InvalidKey("master key file is unreadable"))?,
        );
        MasterKey::from_base64(&text)
    }
}

/// A provider holding a key in memory (tests, or a key fetched from a KMS).
#[derive(Debug, Clone)]
pub struct StaticKeyProvider(MasterKey);

impl StaticKeyProvider {
    /// Wrap a key.
    pub fn new(key: MasterKey) -> Self {
        Self(key)
    }
}

impl KeyProvider for StaticKeyProvider {
    async fn master_key(&self) -> Result<MasterKey> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(p: &impl KeyProvider) -> Result<MasterKey> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(p.master_key())
    }

    #[test]
    fn file_provider_reads_base64_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let k = MasterKey::generate().unwrap();
        let p = dir.path().join("master.key");
        std::fs::write(&p, format!("{}\n", k.to_base64().as_str())).unwrap();
        assert_eq!(get(&FileKeyProvider::new(&p)).unwrap(), k);
        std::fs::write(&p, "not a key").unwrap();
        assert!(matches!(
            get(&FileKeyProvider::new(&p)),
            Err(Error::InvalidKey(_))
        ));
        assert!(get(&FileKeyProvider::new(dir.path().join("missing"))).is_err());
    }

    #[test]
    fn env_provider_reports_missing_variable() {
        let p = EnvKeyProvider::new("HISN_TEST_SURELY_UNSET_VARIABLE_42");
        assert!(matches!(get(&p), Err(Error::InvalidKey(_))));
    }
}
