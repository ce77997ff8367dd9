//! Signed checkpoints: C2SP `tlog-checkpoint` notes signed with Ed25519.
//!
//! ```text
//! hisn-audit-log/<tenant>        origin: names the log (one per tenant)
//! <size>                         number of records, i.e. the next sequence number
//! <base64 root>                  RFC 6962 Merkle root over the record digests
//! head <base64 head>             extension line: the chain link of record size-1
//! time <micros>                  extension line: when it was signed
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! A checkpoint made without a Merkle root (the form before roots existed)
//! has the chain head as its third line and no `head` line; it anchors the
//! chain but supports no Merkle proofs.
//!
//! Key ids, signature lines and key text follow the C2SP `signed-note` format:
//! the key id is the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`
//! and the signature covers the note body (everything before the blank line).
//! A checkpoint protects the records it covers only when it is held somewhere the
//! log's writer cannot rewrite: publish it through a [`CheckpointSink`].

use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::chain::Link;
use crate::clock::Timestamp;
use crate::error::{Error, Result, malformed};
use crate::event::TenantId;

mod log;
mod witness;

#[doc(hidden)]
pub use log::parse_checkpoint_edges;
pub use log::{
    CheckpointSink, FileSink, MemorySink, StdoutSink, parse_checkpoint_log, parse_checkpoint_text,
    parse_notes, read_checkpoint_log,
};
pub(crate) use log::{append_store_checkpoint_log, read_checkpoint_edges, refuse_links};
pub use witness::{Cosignature, CosigningKey, WitnessKey, WitnessPolicy};

/// Prefix of every checkpoint origin; the tenant follows.
pub const ORIGIN_PREFIX: &str = "hisn-audit-log/";
const MAX_NOTE_LEN: usize = 4096;
const MAX_SIGNATURES: usize = 16;
const ED25519_ALG: u8 = 0x01;

/// The origin line for `tenant`'s log.
pub fn origin_for(tenant: &TenantId) -> String {
    format!("{ORIGIN_PREFIX}{tenant}")
}

/// An unsigned checkpoint: the size and head of one tenant's chain at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `hisn-audit-log/<tenant>`.
    pub origin: String,
    /// Number of records (the next sequence number).
    pub size: u64,
    /// Link of record `size - 1` ([`Link::GENESIS`] when `size` is 0).
    pub head: Link,
    /// RFC 6962 Merkle root over the first `size` record digests
    /// ([`merkle`](crate::merkle)), when the checkpoint carries one.
    pub root: Option<crate::merkle::Hash>,
    /// When it was made.
    pub time: Timestamp,
}

impl Checkpoint {
    /// A checkpoint of `tenant`'s chain.
    pub fn new(tenant: &TenantId, size: u64, head: Link, time: Timestamp) -> Self {
        Self {
            origin: origin_for(tenant),
            size,
            head,
            root: None,
            time,
        }
    }

    /// The same checkpoint carrying the Merkle root of its records.
    #[must_use]
    pub fn with_root(mut self, root: crate::merkle::Hash) -> Self {
        self.root = Some(root);
        self
    }

    /// The tenant named by the origin, if the origin is one of ours.
    pub fn tenant(&self) -> Option<TenantId> {
        self.origin
            .strip_prefix(ORIGIN_PREFIX)
            .and_then(|t| TenantId::parse(t).ok())
    }

    /// The note body that is signed.
    pub fn body(&self) -> String {
        match self.root {
            Some(root) => format!(
                "{}\n{}\n{}\nhead {}\ntime {}\n",
                self.origin,
                self.size,
                B64.encode(root),
                B64.encode(self.head.0),
                self.time.unix_micros()
            ),
            None => format!(
                "{}\n{}\n{}\ntime {}\n",
                self.origin,
                self.size,
                B64.encode(self.head.0),
                self.time.unix_micros()
            ),
        }
    }

    fn parse_body(body: &str) -> Result<Self> {
        let bad = || malformed("checkpoint");
        let mut lines = body.strip_suffix('\n').ok_or_else(bad)?.split('\n');
        let origin = lines.next().ok_or_else(bad)?;
        if origin.is_empty() || origin.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        // The numbers need no checks of their own: `parse` takes a sign or
        // leading zeros, but the canonical rendering compared at the end has
        // neither, so only the one spelling `body` writes gets through.
        let size: u64 = lines.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let hash = |s: &str| -> Result<[u8; 32]> {
            B64.decode(s)
                .map_err(|_| bad())?
                .try_into()
                .map_err(|_| bad())
        };
        let third = hash(lines.next().ok_or_else(bad)?)?;
        let mut next = lines.next().ok_or_else(bad)?;
        let (head, root) = match next.strip_prefix("head ") {
            Some(h) => {
                let head = hash(h)?;
                next = lines.next().ok_or_else(bad)?;
                (head, Some(third))
            }
            None => (third, None),
        };
        let time: i64 = next
            .strip_prefix("time ")
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if lines.next().is_some() {
            return Err(bad());
        }
        let cp = Self {
            origin: origin.to_owned(),
            size,
            head: Link(head),
            root,
            time: Timestamp::from_unix_micros(time),
        };
        // Only the canonical rendering is accepted, so a note has one body.
        if cp.body() != body {
            return Err(bad());
        }
        Ok(cp)
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's key name.
    pub key_name: String,
    /// The signer's 4-byte key id.
    pub key_id: [u8; 4],
    /// The Ed25519 signature over the body.
    pub signature: [u8; 64],
}

/// A checkpoint with one or more signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The signatures.
    pub signatures: Vec<NoteSignature>,
    /// Witness cosignatures (C2SP `tlog-cosignature`), checked by a
    /// [`WitnessPolicy`].
    pub cosignatures: Vec<Cosignature>,
}

/// Why a checkpoint was not accepted (see [`SignedCheckpoint::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFault {
    /// No signature is by a trusted key (for example a key rotated out of the trust set).
    UnknownKey,
    /// A signature by a trusted key does not verify: forged or altered.
    BadSignature,
}

impl SignedCheckpoint {
    /// The note text (body, blank line, signature lines).
    pub fn to_note(&self) -> String {
        let mut s = self.checkpoint.body();
        s.push('\n');
        for sig in &self.signatures {
            let mut blob = Vec::with_capacity(68);
            blob.extend_from_slice(&sig.key_id);
            blob.extend_from_slice(&sig.signature);
            s.push_str(&format!("\u{2014} {} {}\n", sig.key_name, B64.encode(blob)));
        }
        for c in &self.cosignatures {
            s.push_str(&c.line());
        }
        s
    }

    /// Parse a note. Signatures are not checked here; see [`verify`](Self::verify).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the text is not a well-formed checkpoint note.
    pub fn parse(note: &str) -> Result<Self> {
        let bad = || malformed("checkpoint");
        if note.len() > MAX_NOTE_LEN {
            return Err(bad());
        }
        let split = note.find("\n\n").ok_or_else(bad)?;
        let (body, rest) = (&note[..=split], &note[split + 2..]);
        let checkpoint = Checkpoint::parse_body(body)?;
        let (mut signatures, mut cosignatures) = (Vec::new(), Vec::new());
        let rest = rest.strip_suffix('\n').ok_or_else(bad)?;
        for line in rest.split('\n') {
            let line = line.strip_prefix("\u{2014} ").ok_or_else(bad)?;
            let (name, b64) = line.split_once(' ').ok_or_else(bad)?;
            check_key_name(name)?;
            let blob = B64.decode(b64).map_err(|_| bad())?;
            if blob.len() == witness::COSIGNATURE_LEN {
                cosignatures.push(Cosignature::from_blob(name, &blob)?);
                if cosignatures.len() > MAX_SIGNATURES {
                    return Err(bad());
                }
                continue;
            }
            // The log's signatures come before witness cosignatures, so a note
            // has one rendering.
            if blob.len() != 68 || !cosignatures.is_empty() {
                return Err(bad());
            }
            let mut key_id = [0u8; 4];
            key_id.copy_from_slice(&blob[..4]);
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&blob[4..]);
            signatures.push(NoteSignature {
                key_name: name.to_owned(),
                key_id,
                signature,
            });
            if signatures.len() > MAX_SIGNATURES {
                return Err(bad());
            }
        }
        if signatures.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            checkpoint,
            signatures,
            cosignatures,
        })
    }

    /// Check the signatures against `trusted`: accepted when at least one
    /// signature is by a trusted key and every signature by a trusted key verifies.
    ///
    /// # Errors
    /// [`CheckpointFault::UnknownKey`] when no signature is by a trusted key,
    /// [`CheckpointFault::BadSignature`] when a trusted key's signature fails.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<(), CheckpointFault> {
        let body = self.checkpoint.body();
        let mut any = false;
        for sig in &self.signatures {
            let Some(key) = trusted.find(&sig.key_name, sig.key_id) else {
                continue;
            };
            any = true;
            let signature = ed25519_dalek::Signature::from_bytes(&sig.signature);
            if key.key.verify_strict(body.as_bytes(), &signature).is_err() {
                return Err(CheckpointFault::BadSignature);
            }
        }
        if any {
            Ok(())
        } else {
            Err(CheckpointFault::UnknownKey)
        }
    }
}

pub(crate) fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || name.contains('+')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(malformed("key name"));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    key_id_for(name, ED25519_ALG, public)
}

/// The C2SP signed-note key id: `SHA-256(name || "\n" || alg || public)[..4]`.
pub(crate) fn key_id_for(name: &str, alg: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    [d[0], d[1], d[2], d[3]]
}

/// Verifier key text: `<name>+<hex key id>+<base64(alg || public key)>`.
pub(crate) fn vkey_text(
    name: &str,
    id: [u8; 4],
    alg: u8,
    key: &ed25519_dalek::VerifyingKey,
) -> String {
    let mut blob = vec![alg];
    blob.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(id), B64.encode(blob))
}

/// Parse [`vkey_text`] output for algorithm `alg`: the name, the key id (checked
/// against the key) and the key.
pub(crate) fn parse_vkey_text(
    text: &str,
    alg: u8,
    what: &'static str,
) -> Result<(String, [u8; 4], ed25519_dalek::VerifyingKey)> {
    let bad = || malformed(what);
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    check_key_name(name)?;
    let blob = B64.decode(b64).map_err(|_| bad())?;
    if blob.len() != 33 || blob[0] != alg {
        return Err(bad());
    }
    let public: [u8; 32] = blob[1..].try_into().map_err(|_| bad())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| bad())?;
    let kid = key_id_for(name, alg, &public);
    if hex::encode(kid) != id {
        return Err(bad());
    }
    Ok((name.to_owned(), kid, key))
}

/// An Ed25519 checkpoint signing key with its name (secret; zeroized on drop,
/// never printed by `Debug`).
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id()))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's RNG.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a bad name (empty, whitespace or `+`), [`Error::Rng`].
    pub fn generate(name: &str) -> Result<Self> {
        check_key_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| Error::Rng)?;
        Ok(Self::from_seed(name, &seed))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> Self {
        Self {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// From a 32-byte seed (for tests and key-management systems).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a bad name.
    pub fn from_bytes(name: &str, seed: &[u8; 32]) -> Result<Self> {
        check_key_name(name)?;
        Ok(Self::from_seed(name, seed))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let key = self.key.verifying_key();
        VerifyingKey {
            id: key_id(&self.name, key.as_bytes()),
            name: self.name.clone(),
            key,
        }
    }

    /// Sign a checkpoint.
    pub fn sign(&self, checkpoint: Checkpoint) -> SignedCheckpoint {
        let sig = self.key.sign(checkpoint.body().as_bytes());
        SignedCheckpoint {
            checkpoint,
            signatures: vec![NoteSignature {
                key_name: self.name.clone(),
                key_id: self.key_id(),
                signature: sig.to_bytes(),
            }],
            cosignatures: Vec::new(),
        }
    }

    /// The secret key as signed-note text:
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut blob = Zeroizing::new(Vec::with_capacity(33));
        blob.push(ED25519_ALG);
        blob.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            B64.encode(&blob)
        ))
    }

    /// Parse [`to_text`](Self::to_text) output (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the text is not a signing key or its id does not match.
    pub fn from_text(text: &str) -> Result<Self> {
        let bad = || malformed("signing key");
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        // Base64 may itself contain '+': split off name and id only.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let blob = Zeroizing::new(B64.decode(b64).map_err(|_| bad())?);
        if blob.len() != 33 || blob[0] != ED25519_ALG {
            return Err(bad());
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&blob[1..]);
        let key = Self::from_bytes(name, &seed)?;
        if hex::encode(key.key_id()) != id {
            return Err(bad());
        }
        Ok(key)
    }
}

/// An Ed25519 checkpoint verification key with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}+{})", self.name, hex::encode(self.id))
    }
}

impl VerifyingKey {
    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// Signed-note verifier text: `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn to_text(&self) -> String {
        vkey_text(&self.name, self.id, ED25519_ALG, &self.key)
    }

    /// Parse [`to_text`](Self::to_text) output (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::Malformed`] when malformed, not Ed25519, or the id does not match.
    pub fn from_text(text: &str) -> Result<Self> {
        let (name, id, key) = parse_vkey_text(text, ED25519_ALG, "verifying key")?;
        Ok(Self { name, id, key })
    }
}

/// The set of keys whose checkpoints a verifier accepts. Keep rotated-out keys
/// here for as long as their checkpoints must verify.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a key.
    pub fn with(mut self, key: VerifyingKey) -> Self {
        self.add(key);
        self
    }

    /// Add a key.
    pub fn add(&mut self, key: VerifyingKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, name: &str, id: [u8; 4]) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.name == name && k.id == id)
    }
}

/// When checkpoints are made: after `every_records` new records or `every`
/// elapsed since the last one with new records, whichever comes first. Records
/// after the newest checkpoint are the unprotected window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Records between checkpoints.
    pub every_records: NonZeroU64,
    /// Time between checkpoints (when there are new records).
    pub every: Duration,
}

impl CheckpointPolicy {
    /// 1,000 records or 60 seconds.
    pub const DEFAULT: Self = Self {
        every_records: match NonZeroU64::new(1000) {
            Some(n) => n,
            None => NonZeroU64::MIN,
        },
        every: Duration::from_secs(60),
    };

    /// Whether a checkpoint is due for a chain of `size` whose last checkpoint
    /// had `last_size` at `last_time`.
    pub fn due(&self, size: u64, last_size: u64, last_time: Timestamp, now: Timestamp) -> bool {
        if size <= last_size {
            return false;
        }
        let micros = i64::try_from(self.every.as_micros()).unwrap_or(i64::MAX);
        size - last_size >= self.every_records.get()
            || now.unix_micros().saturating_sub(last_time.unix_micros()) >= micros
    }
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, b: u8) -> SigningKey {
        SigningKey::from_bytes(name, &[b; 32]).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint::new(
            &TenantId::parse("acme").unwrap(),
            3,
            Link([7; 32]),
            Timestamp::from_unix_micros(99),
        )
    }

    #[test]
    fn note_round_trip_and_verify() {
        let k = key("audit", 1);
        let s = k.sign(cp());
        let note = s.to_note();
        assert!(note.starts_with("hisn-audit-log/acme\n3\n"));
        let p = SignedCheckpoint::parse(&note).unwrap();
        assert_eq!(p, s);
        let trusted = TrustedKeys::new().with(k.verifying_key());
        assert_eq!(p.verify(&trusted), Ok(()));
        assert_eq!(
            p.verify(&TrustedKeys::new().with(key("audit", 2).verifying_key())),
            Err(CheckpointFault::UnknownKey)
        );
        let mut forged = p.clone();
        forged.checkpoint.size = 4;
        assert_eq!(forged.verify(&trusted), Err(CheckpointFault::BadSignature));
    }

    #[test]
    fn key_text_round_trip() {
        let k = SigningKey::generate("hisn-audit").unwrap();
        let k2 = SigningKey::from_text(&k.to_text()).unwrap();
        assert_eq!(k2.verifying_key(), k.verifying_key());
        let v = VerifyingKey::from_text(&k.verifying_key().to_text()).unwrap();
        assert_eq!(v, k.verifying_key());
        assert!(!format!("{k:?}").contains(&*k.to_text()));
        let mut t = k.verifying_key().to_text();
        t.replace_range(..1, "x");
        assert!(
            VerifyingKey::from_text(&t).is_err(),
            "renamed key must not match its id"
        );
    }

    #[test]
    fn malformed_notes_are_refused() {
        let note = key("a", 1).sign(cp()).to_note();
        for bad in [
            note.replace("\n3\n", "\n03\n"),
            note.replace("time 99", "time x"),
            note.replace("\u{2014} ", "- "),
            note.trim_end().to_owned(),
            format!("{}\n", cp().body()),
        ] {
            assert!(SignedCheckpoint::parse(&bad).is_err(), "{bad:?}");
        }
    }

    /// golang.org/x/mod/sumdb/note's example (note.go's package doc): its key
    /// signs its text to the same signature line here, so a Go verifier reads
    /// our signatures and we read its (Ed25519 over the body, key id first).
    #[test]
    fn signatures_are_those_of_go_sumdb_note() {
        let k = SigningKey::from_text(
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        )
        .unwrap();
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let mut blob = k.key_id().to_vec();
        blob.extend_from_slice(&k.key.sign(text.as_bytes()).to_bytes());
        assert_eq!(
            format!("\u{2014} {} {}\n", k.name(), B64.encode(blob)),
            "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
    }

    #[test]
    fn policy_count_or_time() {
        let p = CheckpointPolicy {
            every_records: NonZeroU64::new(10).unwrap(),
            every: Duration::from_secs(1),
        };
        let t0 = Timestamp::from_unix_micros(0);
        assert!(!p.due(5, 0, t0, t0));
        assert!(p.due(10, 0, t0, t0));
        assert!(p.due(1, 0, t0, Timestamp::from_unix_micros(1_000_000)));
        assert!(!p.due(3, 3, t0, Timestamp::from_unix_micros(9_000_000)));
    }
}
