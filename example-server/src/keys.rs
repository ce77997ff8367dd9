//! Local keys for the embedded mode, generated on first start in
//! `<data-dir>/local-keys.json` (mode 0600) with a loud warning: they protect
//! a local demo, not production data. Production supplies its keys through a
//! KMS-backed [`hisn_crypto_vault::KeyProvider`] instead.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hisn_crypto_vault::{MasterKey, SecretKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// File name of the local keys inside the data directory.
pub const KEY_FILE: &str = "local-keys.json";

/// Every secret the server holds. `Debug` prints nothing secret.
pub struct ServerKeys {
    /// Wraps the per-tenant data keys (crypto-vault envelope).
    pub master: MasterKey,
    /// HS256 secret of the session tokens the server issues.
    pub jwt: SecretKey,
    /// Ed25519 seed of the audit checkpoint signing key.
    pub audit_seed: Zeroizing<[u8; 32]>,
    /// Signs attachment download URLs.
    pub url: SecretKey,
    /// Pepper of stored API key hashes.
    pub api_key_pepper: SecretKey,
    /// Standard Webhooks secret of the payment provider (`whsec_...`).
    pub webhook_secret: Zeroizing<String>,
    /// Bearer token of the operator (platform admin) console.
    pub operator_token: Zeroizing<String>,
    /// Signs the tenant context of PostgreSQL transactions (tenant-guard's
    /// RLS context key); `None` in key files written before PostgreSQL mode.
    pub rls_context: Option<hisn_tenant_guard::rls::ContextKey>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    master: String,
    jwt: String,
    audit: String,
    url: String,
    api_key_pepper: String,
    webhook_secret: String,
    operator_token: String,
    /// Added with PostgreSQL mode: older files lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rls_context: Option<String>,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        for s in [
            &mut self.master,
            &mut self.jwt,
            &mut self.audit,
            &mut self.url,
            &mut self.api_key_pepper,
            &mut self.webhook_secret,
            &mut self.operator_token,
        ] {
            s.zeroize();
        }
        if let Some(s) = &mut self.rls_context {
            s.zeroize();
        }
    }
}

/// Shortest operator token accepted from the key file (a generated one is
/// 64 hex digits).
const MIN_OPERATOR_TOKEN: usize = 32;

/// Errors loading or creating the key file (operator-facing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("key file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a valid key file (it is never overwritten).
    #[error(
        "key file {0} is malformed; fix or remove it (removing it loses every encrypted value)"
    )]
    Malformed(String),
    /// The OS random generator failed.
    #[error("random generator failed")]
    Rng,
}

fn random32() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let k = SecretKey::generate().map_err(|_| KeyError::Rng)?;
    Ok(Zeroizing::new(*k.expose_secret()))
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Load the key file from `data_dir`, or generate it (returns whether it was created).
pub fn load_or_generate(data_dir: &Path) -> Result<(ServerKeys, bool), KeyError> {
    let path = data_dir.join(KEY_FILE);
    let created = if path.exists() {
        false
    } else {
        let file = KeyFile {
            master: MasterKey::generate()
                .map_err(|_| KeyError::Rng)?
                .to_base64()
                .to_string(),
            jwt: b64(&*random32()?),
            audit: b64(&*random32()?),
            url: b64(&*random32()?),
            api_key_pepper: b64(&*random32()?),
            webhook_secret: format!("whsec_{}", b64(&*random32()?)),
            operator_token: hex::encode(*random32()?),
            rls_context: Some(hex::encode(*random32()?)),
        };
        let text = Zeroizing::new(
            serde_json::to_string_pretty(&file)
                .map_err(|_| KeyError::Malformed(path.display().to_string()))?,
        );
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        true
    };
    let text = Zeroizing::new(std::fs::read_to_string(&path)?);
    let bad = || KeyError::Malformed(path.display().to_string());
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| bad())?;
    let secret = |s: &str| -> Result<SecretKey, KeyError> {
        let bytes = Zeroizing::new(STANDARD.decode(s).map_err(|_| bad())?);
        SecretKey::from_slice(&bytes).map_err(|_| bad())
    };
    let audit = secret(&file.audit)?;
    // The operator token is compared with what a caller sends: an empty or
    // short one (a hand-edited file) would let anyone in.
    if file.operator_token.trim().len() < MIN_OPERATOR_TOKEN {
        return Err(bad());
    }
    let keys = ServerKeys {
        master: MasterKey::from_base64(&file.master).map_err(|_| bad())?,
        jwt: secret(&file.jwt)?,
        audit_seed: Zeroizing::new(*audit.expose_secret()),
        url: secret(&file.url)?,
        api_key_pepper: secret(&file.api_key_pepper)?,
        webhook_secret: Zeroizing::new(file.webhook_secret.clone()),
        operator_token: Zeroizing::new(file.operator_token.clone()),
        rls_context: match &file.rls_context {
            Some(k) => Some(hisn_tenant_guard::rls::ContextKey::from_text(k).map_err(|_| bad())?),
            None => None,
        },
    };
    Ok((keys, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file whose operator token is empty or short (hand-edited) is
    /// refused: an empty one would match a request with no credential.
    #[test]
    fn an_empty_or_short_operator_token_is_refused() {
        for token in ["", "   ", "0123456789abcdef"] {
            let dir = tempfile::tempdir().unwrap();
            load_or_generate(dir.path()).unwrap();
            let path = dir.path().join(KEY_FILE);
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            v["operator_token"] = serde_json::json!(token);
            std::fs::write(&path, v.to_string()).unwrap();
            assert!(
                matches!(load_or_generate(dir.path()), Err(KeyError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn generated_once_then_reloaded_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_generate(dir.path()).unwrap();
        assert!(created);
        let (b, created) = load_or_generate(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.jwt.expose_secret(), b.jwt.expose_secret());
        assert_eq!(a.master.fingerprint(), b.master.fingerprint());
        assert!(b.webhook_secret.starts_with("whsec_"));
        assert!(a.rls_context.is_some() && a.rls_context == b.rls_context);
        assert_eq!(format!("{a:?}"), "ServerKeys(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others");
        }
    }

    #[test]
    fn malformed_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "{}").unwrap();
        assert!(matches!(
            load_or_generate(dir.path()),
            Err(KeyError::Malformed(_))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            "{}"
        );
    }
}
