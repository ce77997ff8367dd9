//! Storage of wrapped tenant keys.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::KeyId;
use crate::wrap::KeyPurpose;

/// One wrapped tenant key as stored. Holds no plaintext key material: `wrapped`
/// is AES-256-GCM ciphertext under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The tenant.
    pub tenant: String,
    /// What the key is for.
    pub purpose: KeyPurpose,
    /// Id within the tenant and purpose.
    pub key_id: KeyId,
    /// Whether this is the tenant's primary key for its purpose.
    pub primary: bool,
    /// Fingerprint of the master key that wrapped it.
    pub master_fingerprint: [u8; 8],
    /// The wrapped key (61 bytes, see the `wrap` format).
    pub wrapped: Vec<u8>,
    /// Uses of this key counted against its cap: every use reserved by any
    /// process ([`KeyStore::reserve_usage`]), less the unspent uses given
    /// back ([`KeyStore::release_usage`]). Never below the encryptions
    /// actually performed.
    pub usage: u64,
}

/// Storage of wrapped keys. Implementations: [`MemoryKeyStore`], [`DirKeyStore`]
/// and, with the `postgres` feature, `PgKeyStore`.
pub trait KeyStore: Send + Sync {
    /// Every key of `tenant`.
    ///
    /// # Errors
    /// [`Error::TenantShredded`] if the tenant was shredded; [`Error::Store`].
    fn load(&self, tenant: &str) -> impl Future<Output = Result<Vec<WrappedKey>>> + Send;
    /// Insert a key unless (tenant, purpose, key id) exists; returns whether it was
    /// inserted. If `key.primary`, it is inserted only when the tenant has no primary
    /// for that purpose yet (first-use race between processes).
    ///
    /// # Errors
    /// [`Error::TenantShredded`]; [`Error::Store`].
    fn insert(&self, key: &WrappedKey) -> impl Future<Output = Result<bool>> + Send;
    /// Make `key_id` the only primary key of (tenant, purpose).
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if it does not exist; [`Error::Store`].
    fn set_primary(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replace the wrapped bytes and master fingerprint (master-key rotation).
    ///
    /// # Errors
    /// [`Error::UnknownKey`]; [`Error::Store`].
    fn rewrap(&self, key: &WrappedKey) -> impl Future<Output = Result<()>> + Send;
    /// Raise the persisted usage of a key to at least `usage`. No longer
    /// called by [`crate::Vault`] (which reserves uses before spending them,
    /// see [`KeyStore::reserve_usage`]); kept so that existing implementations
    /// and tools keep working.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Reserve up to `n` uses of a key below `cap`, **atomically** (one
    /// statement, or under the store's lock): if the stored usage `u` is below
    /// `cap`, set it to `min(u + n, cap)` and return `u..min(u + n, cap)`;
    /// otherwise change nothing and return the empty range `u..u`. The caller
    /// may then perform exactly `range.end - range.start` encryptions.
    ///
    /// This is what makes the usage cap global: every process sharing the
    /// store reserves before it encrypts, so the uses of all processes
    /// together never pass `cap`. A store shared by several processes **must**
    /// override this method: the default reads the usage with
    /// [`KeyStore::load`] and writes it with [`KeyStore::record_usage`], which
    /// is exact within one process but lets two processes reserving at the
    /// same moment receive the same range. [`MemoryKeyStore`],
    /// [`DirKeyStore`] and `PgKeyStore` override it.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] if the key does not exist; [`Error::Store`].
    fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> impl Future<Output = Result<Range<u64>>> + Send {
        async move {
            tracing::warn!(target: "hisn_crypto_vault", "KeyStore::reserve_usage is not overridden: reservations are not atomic across processes");
            let keys = self.load(tenant).await?;
            let u = keys
                .iter()
                .find(|k| k.purpose == purpose && k.key_id == key_id)
                .ok_or(Error::UnknownKey)?
                .usage;
            let end = reserved_end(u, n, cap);
            if end > u {
                self.record_usage(tenant, purpose, key_id, end).await?;
            }
            Ok(u..end)
        }
    }
    /// Give back `n` reserved uses that were never spent (a keyring leaving
    /// the cache, [`crate::Vault::release_unspent`]): atomically lower the
    /// stored usage by `n` (not below 0). Only ever called with uses the
    /// caller reserved and can no longer spend. The default keeps them
    /// counted (fail safe: they are lost, not reused).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (tenant, purpose, key_id, n);
        async { Ok(()) }
    }
    /// Delete one non-primary key.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if it is the primary; [`Error::Store`].
    fn delete(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Destroy every key of `tenant` and remember that it was shredded.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn shred(&self, tenant: &str) -> impl Future<Output = Result<()>> + Send;
    /// Every tenant with keys.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn tenants(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// Where a reservation of `n` uses below `cap` ends, from a stored usage
/// `u`: `min(u + n, cap)`, and `u` itself (nothing reserved) at or past `cap`.
pub(crate) fn reserved_end(u: u64, n: u64, cap: u64) -> u64 {
    if u >= cap {
        u
    } else {
        u.saturating_add(n).min(cap)
    }
}

#[derive(Debug, Default)]
struct Tables {
    keys: BTreeMap<String, Vec<WrappedKey>>,
    shredded: BTreeSet<String>,
}

impl Tables {
    fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        if self.shredded.contains(tenant) {
            return Err(Error::TenantShredded);
        }
        Ok(self.keys.get(tenant).cloned().unwrap_or_default())
    }

    fn insert(&mut self, key: &WrappedKey) -> Result<bool> {
        if self.shredded.contains(&key.tenant) {
            return Err(Error::TenantShredded);
        }
        let v = self.keys.entry(key.tenant.clone()).or_default();
        let clash = v.iter().any(|k| {
            k.purpose == key.purpose && (k.key_id == key.key_id || (key.primary && k.primary))
        });
        if clash {
            return Ok(false);
        }
        v.push(key.clone());
        Ok(true)
    }

    fn find(
        &mut self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
    ) -> Result<&mut WrappedKey> {
        self.keys
            .get_mut(tenant)
            .and_then(|v| {
                v.iter_mut()
                    .find(|k| k.purpose == purpose && k.key_id == key_id)
            })
            .ok_or(Error::UnknownKey)
    }

    fn set_primary(&mut self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.find(tenant, purpose, key_id)?;
        for k in self.keys.get_mut(tenant).into_iter().flatten() {
            if k.purpose == purpose {
                k.primary = k.key_id == key_id;
            }
        }
        Ok(())
    }

    fn rewrap(&mut self, key: &WrappedKey) -> Result<()> {
        let k = self.find(&key.tenant, key.purpose, key.key_id)?;
        k.wrapped.clone_from(&key.wrapped);
        k.master_fingerprint = key.master_fingerprint;
        Ok(())
    }

    fn record_usage(
        &mut self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        let k = self.find(tenant, purpose, key_id)?;
        k.usage = k.usage.max(usage);
        Ok(())
    }

    fn reserve_usage(
        &mut self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> Result<Range<u64>> {
        let k = self.find(tenant, purpose, key_id)?;
        let u = k.usage;
        k.usage = reserved_end(u, n, cap);
        Ok(u..k.usage)
    }

    fn release_usage(
        &mut self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> Result<()> {
        let k = self.find(tenant, purpose, key_id)?;
        k.usage = k.usage.saturating_sub(n);
        Ok(())
    }

    fn delete(&mut self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        if self.find(tenant, purpose, key_id)?.primary {
            return Err(Error::InvalidConfig(
                "the primary key cannot be deleted; rotate first",
            ));
        }
        if let Some(v) = self.keys.get_mut(tenant) {
            v.retain(|k| !(k.purpose == purpose && k.key_id == key_id));
        }
        Ok(())
    }

    fn shred(&mut self, tenant: &str) {
        self.keys.remove(tenant);
        self.shredded.insert(tenant.to_owned());
    }
}

/// Wrapped keys in memory (tests, single-process tools).
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    tables: Mutex<Tables>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyStore for MemoryKeyStore {
    async fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        self.tables.lock().load(tenant)
    }
    async fn insert(&self, key: &WrappedKey) -> Result<bool> {
        self.tables.lock().insert(key)
    }
    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.tables.lock().set_primary(tenant, purpose, key_id)
    }
    async fn rewrap(&self, key: &WrappedKey) -> Result<()> {
        self.tables.lock().rewrap(key)
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        self.tables
            .lock()
            .record_usage(tenant, purpose, key_id, usage)
    }
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> Result<Range<u64>> {
        self.tables
            .lock()
            .reserve_usage(tenant, purpose, key_id, n, cap)
    }
    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> Result<()> {
        self.tables.lock().release_usage(tenant, purpose, key_id, n)
    }
    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.tables.lock().delete(tenant, purpose, key_id)
    }
    async fn shred(&self, tenant: &str) -> Result<()> {
        self.tables.lock().shred(tenant);
        Ok(())
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        Ok(self.tables.lock().keys.keys().cloned().collect())
    }
}

/// Wrapped keys in a directory: one small text file per tenant
/// (`<hex(tenant)>.keys`, one key per line), rewritten atomically (a temporary
/// file, then a rename) on every change; a shredded tenant leaves a
/// `<hex(tenant)>.shredded` marker. Every change holds an exclusive lock on
/// `.hisn-keystore.lock` in the directory (advisory, `flock`-style), so
/// several processes on one directory (a server and a `hisn vault` command)
/// lose no update. For one machine and small deployments such as the `hisn`
/// CLI; services with several instances should use a database store.
#[derive(Debug)]
pub struct DirKeyStore {
    dir: PathBuf,
    lock: Mutex<()>,
}

/// Longest tenant id [`DirKeyStore`] accepts (file names are hex of the id).
const MAX_DIR_TENANT_LEN: usize = 100;

/// Largest key file read (bounds memory on a corrupt or hostile directory).
const MAX_KEY_FILE_LEN: u64 = 1 << 20;

/// The lock file every writer of a key directory locks exclusively.
const DIR_LOCK_FILE: &str = ".hisn-keystore.lock";

/// Write `bytes` to `path` and `fsync` the file (its directory entry is
/// the caller's to sync, once the last rename or removal is done).
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `fsync` a directory, so that a file created or renamed in it survives a
/// power loss.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl DirKeyStore {
    /// Use (and create if needed) `dir`.
    ///
    /// # Errors
    /// [`Error::Store`] if the directory cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Store(format!("cannot create key directory: {}", e.kind())))?;
        Ok(Self {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, tenant: &str, ext: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{ext}", hex::encode(tenant.as_bytes())))
    }

    fn check_tenant(tenant: &str) -> Result<()> {
        // Hex doubles the length; keep file names under common 255-byte limits.
        if tenant.is_empty() || tenant.len() > MAX_DIR_TENANT_LEN {
            return Err(Error::Store(format!(
                "DirKeyStore tenant ids must be 1..={MAX_DIR_TENANT_LEN} bytes"
            )));
        }
        Ok(())
    }

    fn read(&self, tenant: &str) -> Result<Tables> {
        Self::check_tenant(tenant)?;
        let mut t = Tables::default();
        // Fail closed: a marker that cannot be checked (permissions, I/O) is
        // an error, never "not shredded".
        if self
            .path(tenant, "shredded")
            .try_exists()
            .map_err(|e| Error::Store(format!("cannot check shred marker: {}", e.kind())))?
        {
            t.shredded.insert(tenant.to_owned());
            return Ok(t);
        }
        let p = self.path(tenant, "keys");
        let text = match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t),
            Err(e) => return Err(Error::Store(format!("cannot read key file: {}", e.kind()))),
            Ok(m) if m.len() > MAX_KEY_FILE_LEN => {
                return Err(Error::Store("key file too large".into()));
            }
            Ok(_) => std::fs::read_to_string(&p)
                .map_err(|e| Error::Store(format!("cannot read key file: {}", e.kind())))?,
        };
        let mut keys = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            keys.push(
                parse_line(tenant, line).ok_or_else(|| Error::Store("corrupt key file".into()))?,
            );
        }
        t.keys.insert(tenant.to_owned(), keys);
        Ok(t)
    }

    fn write(&self, tenant: &str, t: &Tables) -> Result<()> {
        Self::check_tenant(tenant)?;
        let io = |e: std::io::Error| Error::Store(format!("cannot write key file: {}", e.kind()));
        if t.shredded.contains(tenant) {
            // The marker is on disk before the keys go: a power loss between
            // the two leaves a shredded tenant, never keys without a marker
            // that a restart would use again.
            write_synced(&self.path(tenant, "shredded"), b"shredded\n").map_err(io)?;
            sync_dir(&self.dir).map_err(io)?;
            // The key file, and a temporary one a write that crashed before
            // its rename left (it holds wrapped keys too).
            for name in ["keys", "keys.tmp"] {
                match std::fs::remove_file(self.path(tenant, name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                    _ => {}
                }
            }
            return sync_dir(&self.dir).map_err(io);
        }
        let mut text = String::new();
        for k in t.keys.get(tenant).into_iter().flatten() {
            text.push_str(&format!(
                "{} {} {} {} {} {}\n",
                k.purpose.as_str(),
                k.key_id.0,
                u8::from(k.primary),
                k.usage,
                hex::encode(k.master_fingerprint),
                hex::encode(&k.wrapped)
            ));
        }
        // Synced before it replaces the old file, and the rename synced
        // after: a reservation of uses is durable before any is spent, so a
        // power loss never rolls the count back below uses already made.
        let tmp = self.path(tenant, "keys.tmp");
        write_synced(&tmp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, self.path(tenant, "keys")).map_err(io)?;
        sync_dir(&self.dir).map_err(io)
    }

    /// An exclusive lock on the directory, shared with every other process
    /// (and instance) using it; released when the returned file is dropped.
    fn dir_lock(&self) -> Result<std::fs::File> {
        let io =
            |e: std::io::Error| Error::Store(format!("cannot lock key directory: {}", e.kind()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(DIR_LOCK_FILE))
            .map_err(io)?;
        f.lock().map_err(io)?;
        Ok(f)
    }

    /// Read, change and write a tenant's key file under the in-process and
    /// the directory lock (a read-modify-write racing another process's would
    /// write back a stale list over its change).
    fn modify<T>(&self, tenant: &str, f: impl FnOnce(&mut Tables) -> Result<T>) -> Result<T> {
        let _g = self.lock.lock();
        let _dir = self.dir_lock()?;
        let mut t = self.read(tenant)?;
        let out = f(&mut t)?;
        self.write(tenant, &t)?;
        Ok(out)
    }
}

fn parse_line(tenant: &str, line: &str) -> Option<WrappedKey> {
    let mut it = line.split_ascii_whitespace();
    let purpose = KeyPurpose::parse(it.next()?)?;
    let key_id = KeyId(it.next()?.parse().ok()?);
    let primary = match it.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    let usage = it.next()?.parse().ok()?;
    let fp: [u8; 8] = hex::decode(it.next()?).ok()?.try_into().ok()?;
    let wrapped = hex::decode(it.next()?).ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(WrappedKey {
        tenant: tenant.to_owned(),
        purpose,
        key_id,
        primary,
        master_fingerprint: fp,
        wrapped,
        usage,
    })
}

impl KeyStore for DirKeyStore {
    async fn load(&self, tenant: &str) -> Result<Vec<WrappedKey>> {
        let _g = self.lock.lock();
        self.read(tenant)?.load(tenant)
    }
    async fn insert(&self, key: &WrappedKey) -> Result<bool> {
        self.modify(&key.tenant, |t| t.insert(key))
    }
    async fn set_primary(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.modify(tenant, |t| t.set_primary(tenant, purpose, key_id))
    }
    async fn rewrap(&self, key: &WrappedKey) -> Result<()> {
        self.modify(&key.tenant, |t| t.rewrap(key))
    }
    async fn record_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        usage: u64,
    ) -> Result<()> {
        self.modify(tenant, |t| t.record_usage(tenant, purpose, key_id, usage))
    }
    async fn reserve_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
        cap: u64,
    ) -> Result<Range<u64>> {
        self.modify(tenant, |t| t.reserve_usage(tenant, purpose, key_id, n, cap))
    }
    async fn release_usage(
        &self,
        tenant: &str,
        purpose: KeyPurpose,
        key_id: KeyId,
        n: u64,
    ) -> Result<()> {
        self.modify(tenant, |t| t.release_usage(tenant, purpose, key_id, n))
    }
    async fn delete(&self, tenant: &str, purpose: KeyPurpose, key_id: KeyId) -> Result<()> {
        self.modify(tenant, |t| t.delete(tenant, purpose, key_id))
    }
    async fn shred(&self, tenant: &str) -> Result<()> {
        let _g = self.lock.lock();
        let _dir = self.dir_lock()?;
        let mut t = Tables::default();
        t.shred(tenant);
        self.write(tenant, &t)
    }
    async fn tenants(&self) -> Result<Vec<String>> {
        let _g = self.lock.lock();
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::Store(format!("cannot list key directory: {}", e.kind())))?;
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".keys")) else {
                continue;
            };
            if let Some(t) = hex::decode(stem)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                out.push(t);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenant `t`'s primary data key 1 with `usage` uses counted.
    fn test_key(usage: u64) -> WrappedKey {
        WrappedKey {
            tenant: "t".into(),
            purpose: KeyPurpose::Data,
            key_id: KeyId(1),
            primary: true,
            master_fingerprint: [0; 8],
            wrapped: vec![7; 61],
            usage,
        }
    }

    /// A shred removes a temporary key file a crashed write left (it holds
    /// wrapped keys too), and a shred marker that cannot be checked is an
    /// error, never "not shredded".
    #[tokio::test]
    async fn dir_shred_removes_a_leftover_temporary_key_file_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirKeyStore::open(dir.path()).unwrap();
        let key = test_key(0);
        assert!(s.insert(&key).await.unwrap());
        let (keys, tmp) = (s.path("t", "keys"), s.path("t", "keys.tmp"));
        std::fs::copy(&keys, &tmp).unwrap();
        s.shred("t").await.unwrap();
        assert!(!keys.exists() && !tmp.exists(), "wrapped keys left behind");
        assert!(matches!(s.load("t").await, Err(Error::TenantShredded)));
        // A marker path that cannot be checked: a file where a directory
        // of the path should be (ENOTDIR), standing in for a permission or
        // I/O error.
        let blocked = tempfile::tempdir().unwrap();
        let file = blocked.path().join("notadir");
        std::fs::write(&file, b"x").unwrap();
        let bad = DirKeyStore {
            dir: file.join("sub"),
            lock: Mutex::new(()),
        };
        assert!(bad.path("t", "shredded").try_exists().is_err());
        assert!(matches!(bad.read("t"), Err(Error::Store(_))));
    }

    /// A reservation ends at `min(u + n, cap)`; at or past the cap it
    /// reserves nothing (and never moves a count past the cap or back).
    #[test]
    fn reserved_end_is_bounded_by_the_cap() {
        assert_eq!(reserved_end(0, 4, 10), 4);
        assert_eq!(reserved_end(8, 4, 10), 10);
        assert_eq!(reserved_end(10, 4, 10), 10);
        assert_eq!(reserved_end(12, 4, 10), 12);
        assert_eq!(reserved_end(u64::MAX - 1, u64::MAX, u64::MAX), u64::MAX);
    }

    /// The memory store reserves disjoint ranges up to the cap, then empty
    /// ones; a give-back lowers the count (not below 0); unknown keys are
    /// `UnknownKey`.
    #[tokio::test]
    async fn memory_store_reserves_disjoint_ranges_and_takes_uses_back() {
        let s = MemoryKeyStore::new();
        let key = test_key(3);
        assert!(s.insert(&key).await.unwrap());
        let d = KeyPurpose::Data;
        assert_eq!(
            s.reserve_usage("t", d, KeyId(1), 4, 10).await.unwrap(),
            3..7
        );
        assert_eq!(
            s.reserve_usage("t", d, KeyId(1), 4, 10).await.unwrap(),
            7..10
        );
        assert_eq!(
            s.reserve_usage("t", d, KeyId(1), 4, 10).await.unwrap(),
            10..10
        );
        s.release_usage("t", d, KeyId(1), 2).await.unwrap();
        assert_eq!(
            s.reserve_usage("t", d, KeyId(1), 1, 10).await.unwrap(),
            8..9
        );
        s.release_usage("t", d, KeyId(1), 100).await.unwrap();
        assert_eq!(s.load("t").await.unwrap()[0].usage, 0);
        assert!(matches!(
            s.reserve_usage("t", d, KeyId(2), 1, 10).await,
            Err(Error::UnknownKey)
        ));
        assert!(matches!(
            s.release_usage("u", d, KeyId(1), 1).await,
            Err(Error::UnknownKey)
        ));
    }
}
