//! Anchors the store's writer cannot remove: checkpoints held elsewhere and
//! the verifier's own state.
//!
//! Everything a store holds, including its copy of the checkpoints, is in the
//! hands of whoever can write the store: after a rewrite, deleting the store's
//! `checkpoints.jsonl` leaves a self-consistent chain that nothing contradicts.
//! Verification is only as strong as the checkpoints it is given from outside:
//!
//! - [`Anchors`]: checkpoints held elsewhere (a transparency log, a WORM
//!   bucket, the output of `hisn audit checkpoint` kept by the operator), by
//!   tenant. They are passed as vouched-for anchors: a fault in one is a verdict.
//! - [`VerifierState`]: the newest checkpoint the verifier itself has seen
//!   verify, per tenant, kept by the verifier (not beside the store). A later
//!   run against a log shorter than that, or one that disagrees with it, is
//!   `truncated` / `tampered` / `fork`: a rollback of the store (records and
//!   checkpoints together) never reads as intact.
//! - [`require_anchor`]: with keys given, a chain that no verified checkpoint
//!   covers is a failure ([`Verdict::Unanchored`]) rather than a pass.
//! - [`verify_store`]: every tenant the store, its checkpoints or the anchors
//!   know, so a tenant whose chain was deleted is `truncated`, not skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use crate::checkpoint::{SignedCheckpoint, TrustedKeys, parse_checkpoint_text};
use crate::error::{Error, Result, malformed};
use crate::event::TenantId;
use crate::store::AuditRead;
use crate::verify::{Verdict, VerifyReport};

/// Checkpoints held outside the store, by tenant (the tenant is read from each
/// note's origin).
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    by_tenant: BTreeMap<TenantId, Vec<SignedCheckpoint>>,
}

impl Anchors {
    /// No anchors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one checkpoint.
    ///
    /// # Errors
    /// [`Error::Malformed`] when its origin does not name one of our tenants.
    pub fn add(&mut self, checkpoint: SignedCheckpoint) -> Result<()> {
        let tenant = checkpoint
            .checkpoint
            .tenant()
            .ok_or_else(|| malformed("checkpoint origin"))?;
        let list = self.by_tenant.entry(tenant).or_default();
        if !list.contains(&checkpoint) {
            list.push(checkpoint);
        }
        Ok(())
    }

    /// Add every checkpoint in `text` (JSON lines or notes one after another,
    /// see [`parse_checkpoint_text`]); returns how many were read.
    ///
    /// # Errors
    /// [`Error::Malformed`] when any part is not a checkpoint of ours: these
    /// are the verifier's own evidence, so nothing is skipped.
    pub fn add_text(&mut self, text: &str) -> Result<usize> {
        let cps = parse_checkpoint_text(text)?;
        let n = cps.len();
        for cp in cps {
            self.add(cp)?;
        }
        Ok(n)
    }

    /// Add the checkpoints a [`VerifierState`] remembers.
    pub fn add_state(&mut self, state: &VerifierState) {
        for cp in state.tenants.values() {
            // A state only holds notes with one of our origins.
            let _ = self.add(cp.clone());
        }
    }

    /// The anchors of `tenant`.
    pub fn for_tenant(&self, tenant: &TenantId) -> &[SignedCheckpoint] {
        self.by_tenant.get(tenant).map_or(&[], Vec::as_slice)
    }

    /// Tenants with at least one anchor.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.by_tenant.keys()
    }

    /// Whether there are no anchors.
    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty()
    }
}

/// The newest checkpoint a verifier has seen verify, per tenant. Keep it where
/// the store's writer cannot change it (the verifier's machine); it makes a
/// rollback of the whole store visible.
///
/// Its checkpoints are passed back as vouched anchors, so keep a rotated-out
/// key in the trust set while the state still holds a checkpoint it signed
/// (otherwise that tenant reports `unknown_signing_key`), and keep one state
/// per store: the state does not know which store it was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifierState {
    tenants: BTreeMap<TenantId, SignedCheckpoint>,
}

const STATE_VERSION: u64 = 1;

impl VerifierState {
    /// An empty state (a verifier that has seen nothing yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a state file; a missing file is an empty state.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Malformed`] when the file is not a state (never
    /// read as empty: that would forget what was seen).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(e) => return Err(e.into()),
        };
        Self::from_json(&text)
    }

    /// Parse the JSON form ([`to_json`](Self::to_json)).
    ///
    /// # Errors
    /// [`Error::Malformed`].
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = || malformed("verifier state");
        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        if v.get("version").and_then(serde_json::Value::as_u64) != Some(STATE_VERSION) {
            return Err(bad());
        }
        let mut state = Self::new();
        let tenants = v
            .get("tenants")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(bad)?;
        for (name, entry) in tenants {
            let tenant = TenantId::parse(name).map_err(|_| bad())?;
            let note = entry
                .get("note")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(bad)?;
            let cp = SignedCheckpoint::parse(note).map_err(|_| bad())?;
            if cp.checkpoint.tenant().as_ref() != Some(&tenant) {
                return Err(bad());
            }
            state.tenants.insert(tenant, cp);
        }
        Ok(state)
    }

    /// The JSON form: `{"version": 1, "tenants": {"<tenant>": {"size": n, "note": "..."}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let tenants: serde_json::Map<String, serde_json::Value> = self
            .tenants
            .iter()
            .map(|(t, cp)| {
                (
                    t.as_str().to_owned(),
                    serde_json::json!({ "size": cp.checkpoint.size, "note": cp.to_note() }),
                )
            })
            .collect();
        serde_json::json!({ "version": STATE_VERSION, "tenants": tenants })
    }

    /// Write the state atomically (temporary file, fsync, rename, fsync of the
    /// directory), so a crash leaves the old or the new state, never a torn one.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.to_json().to_string().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// The newest checkpoint seen for `tenant`.
    pub fn checkpoint(&self, tenant: &TenantId) -> Option<&SignedCheckpoint> {
        self.tenants.get(tenant)
    }

    /// Remember the checkpoint a passing report matched, if it is newer than
    /// the one held. A failing report changes nothing. Returns whether the
    /// state changed.
    pub fn update(&mut self, report: &VerifyReport) -> bool {
        let Some(cp) = report.checkpoint.as_ref().filter(|_| report.is_ok()) else {
            return false;
        };
        if cp.checkpoint.tenant().as_ref() != Some(&report.tenant) {
            return false;
        }
        match self.tenants.get(&report.tenant) {
            Some(old) if old.checkpoint.size >= cp.checkpoint.size => false,
            _ => {
                self.tenants.insert(report.tenant.clone(), cp.clone());
                true
            }
        }
    }
}

/// With keys given, turn a passing report that no verified checkpoint covers
/// into [`Verdict::Unanchored`]: a chain rewritten by someone without the key,
/// with the store's checkpoints deleted, must not pass. Records after the
/// newest checkpoint remain the documented unprotected window
/// ([`Verdict::UnanchoredTail`]).
pub fn require_anchor(report: &mut VerifyReport) {
    if report.is_ok() && !report.is_anchored() {
        tracing::warn!(tenant = %report.tenant, "audit chain not covered by any verified checkpoint");
        report.verdict = Verdict::Unanchored;
        report.seq = Some(report.verified_from);
    }
}

/// Verify every tenant that the store holds a chain or checkpoints for, or
/// that `anchors` name (or only `tenant`), each against the store's
/// checkpoints plus its anchors. A tenant whose chain is gone verifies as an
/// empty log, so any checkpoint of it makes it [`Verdict::Truncated`].
///
/// # Errors
/// Store I/O errors.
pub fn verify_store<S: AuditRead + ?Sized>(
    store: &S,
    keys: Option<&TrustedKeys>,
    anchors: &Anchors,
    tenant: Option<&TenantId>,
) -> Result<Vec<VerifyReport>> {
    verify_store_witnessed(store, keys, None, anchors, tenant)
}

/// [`verify_store`] with a witness policy: a checkpoint counts only when it
/// also carries `witnesses`' N-of-M cosignatures (see
/// [`AuditRead::verify_witnessed`]).
///
/// # Errors
/// Store I/O errors.
pub fn verify_store_witnessed<S: AuditRead + ?Sized>(
    store: &S,
    keys: Option<&TrustedKeys>,
    witnesses: Option<&crate::checkpoint::WitnessPolicy>,
    anchors: &Anchors,
    tenant: Option<&TenantId>,
) -> Result<Vec<VerifyReport>> {
    let tenants: BTreeSet<TenantId> = match tenant {
        Some(t) => BTreeSet::from([t.clone()]),
        None => store
            .tenants()?
            .into_iter()
            .chain(store.checkpoint_tenants()?)
            .chain(anchors.tenants().cloned())
            .collect(),
    };
    tenants
        .iter()
        .map(|t| store.verify_witnessed(t, keys, witnesses, anchors.for_tenant(t)))
        .collect()
}

/// Whether `tenant` has a chain in `store` (`false` for a vanished one).
///
/// # Errors
/// Store I/O errors other than [`Error::NotFound`].
pub fn has_chain<S: AuditRead + ?Sized>(store: &S, tenant: &TenantId) -> Result<bool> {
    match store.bounds(tenant) {
        Ok(_) => Ok(true),
        Err(Error::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}
