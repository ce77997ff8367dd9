//! Witness cosignatures (C2SP `tlog-cosignature`, `cosignature/v1`) and an
//! N-of-M witness policy.
//!
//! A witness checks that each checkpoint it sees of a log is consistent with
//! the last one it cosigned (a Merkle consistency proof,
//! [`Consistency`](crate::merkle::Consistency)) and then cosigns it: an
//! Ed25519 signature over `"cosignature/v1\ntime <seconds>\n" || body`, written
//! as one more signature line, `— <name> base64(key id || timestamp (8 bytes,
//! big-endian) || signature)`, with key id `SHA-256(name || "\n" || 0x04 ||
//! public key)[..4]`. A verifier that requires N of M witnesses knows the log
//! operator did not show it a view the witnesses never saw (a split view).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use zeroize::Zeroizing;

use super::{SignedCheckpoint, check_key_name, key_id_for, parse_vkey_text, vkey_text};
use crate::error::{Result, malformed};

/// Length of a decoded cosignature blob: key id, timestamp, signature.
pub(super) const COSIGNATURE_LEN: usize = 4 + 8 + 64;
const COSIGNATURE_ALG: u8 = 0x04;

fn witness_key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    key_id_for(name, COSIGNATURE_ALG, public)
}

fn signed_message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// One witness cosignature line of a checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub name: String,
    /// The witness's 4-byte key id.
    pub key_id: [u8; 4],
    /// When the witness cosigned (seconds since the UNIX epoch).
    pub timestamp: u64,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl Cosignature {
    pub(super) fn from_blob(name: &str, blob: &[u8]) -> Result<Self> {
        let bad = || malformed("cosignature");
        check_key_name(name)?;
        if blob.len() != COSIGNATURE_LEN {
            return Err(bad());
        }
        let key_id: [u8; 4] = blob[..4].try_into().map_err(|_| bad())?;
        let ts: [u8; 8] = blob[4..12].try_into().map_err(|_| bad())?;
        let signature: [u8; 64] = blob[12..].try_into().map_err(|_| bad())?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            timestamp: u64::from_be_bytes(ts),
            signature,
        })
    }

    pub(super) fn line(&self) -> String {
        let mut blob = Vec::with_capacity(COSIGNATURE_LEN);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&self.timestamp.to_be_bytes());
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A witness's cosigning key (secret; zeroized, never printed). For witnesses
/// and tests.
pub struct CosigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for CosigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CosigningKey {
    /// From a 32-byte seed.
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed) for a bad name.
    pub fn from_bytes(name: &str, seed: &[u8; 32]) -> Result<Self> {
        check_key_name(name)?;
        let seed = Zeroizing::new(*seed);
        Ok(Self {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The public half.
    pub fn witness_key(&self) -> WitnessKey {
        let key = self.key.verifying_key();
        WitnessKey {
            id: witness_key_id(&self.name, key.as_bytes()),
            name: self.name.clone(),
            key,
        }
    }

    /// Cosign `checkpoint` at `timestamp` (seconds): the note gains one line.
    /// A witness must first check the checkpoint is consistent with the last
    /// one it cosigned.
    pub fn cosign(&self, checkpoint: &mut SignedCheckpoint, timestamp: u64) {
        let msg = signed_message(timestamp, &checkpoint.checkpoint.body());
        let cs = Cosignature {
            name: self.name.clone(),
            key_id: self.witness_key().id,
            timestamp,
            signature: self.key.sign(&msg).to_bytes(),
        };
        checkpoint
            .cosignatures
            .retain(|c| c.key_id != cs.key_id || c.name != cs.name);
        checkpoint.cosignatures.push(cs);
    }
}

/// A witness's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WitnessKey({}+{})", self.name, hex::encode(self.id))
    }
}

impl WitnessKey {
    /// Verifier key text: `<name>+<hex key id>+<base64(0x04 || public key)>`.
    pub fn to_text(&self) -> String {
        vkey_text(&self.name, self.id, COSIGNATURE_ALG, &self.key)
    }

    /// Parse [`to_text`](Self::to_text) output.
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed).
    pub fn from_text(text: &str) -> Result<Self> {
        let (name, id, key) = parse_vkey_text(text, COSIGNATURE_ALG, "witness key")?;
        Ok(Self { name, id, key })
    }

    fn verifies(&self, body: &str, c: &Cosignature) -> bool {
        c.name == self.name
            && c.key_id == self.id
            && self
                .key
                .verify_strict(
                    &signed_message(c.timestamp, body),
                    &ed25519_dalek::Signature::from_bytes(&c.signature),
                )
                .is_ok()
    }
}

/// The witnesses of [`WitnessPolicy::new`], distinct by public key, first
/// listing kept (outside `new`, which cargo-mutants never mutates: see
/// docs/MUTATION.md). Not by (name, key id): the key id is derived from the
/// name, so one key under two names would count twice and one witness alone
/// could meet a 2-of-M policy.
fn distinct_keys(witnesses: Vec<WitnessKey>) -> Vec<WitnessKey> {
    let mut w: Vec<WitnessKey> = Vec::with_capacity(witnesses.len());
    for k in witnesses {
        if !w.iter().any(|x| x.key == k.key) {
            w.push(k);
        }
    }
    w
}

/// The threshold bound [`WitnessPolicy::new`] checks: 1 to `distinct`.
fn threshold_within(threshold: usize, distinct: usize) -> Result<()> {
    if threshold == 0 || threshold > distinct {
        return Err(malformed("witness policy"));
    }
    Ok(())
}

/// Accept a checkpoint only when at least `threshold` of `witnesses` cosigned
/// it (each witness counted once; unknown or failing cosignatures ignored).
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    witnesses: Vec<WitnessKey>,
    threshold: usize,
}

impl WitnessPolicy {
    /// `threshold` of `witnesses` (N of M).
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed) when `threshold` is 0 or
    /// more than the number of distinct witnesses (distinct public keys: the
    /// same key listed under two names is one witness).
    pub fn new(witnesses: Vec<WitnessKey>, threshold: usize) -> Result<Self> {
        let witnesses = distinct_keys(witnesses);
        threshold_within(threshold, witnesses.len())?;
        Ok(Self {
            witnesses,
            threshold,
        })
    }

    /// How many of the policy's witnesses validly cosigned `checkpoint`.
    pub fn count(&self, checkpoint: &SignedCheckpoint) -> usize {
        let body = checkpoint.checkpoint.body();
        self.witnesses
            .iter()
            .filter(|w| checkpoint.cosignatures.iter().any(|c| w.verifies(&body, c)))
            .count()
    }

    /// Whether `checkpoint` meets the policy.
    pub fn accepts(&self, checkpoint: &SignedCheckpoint) -> bool {
        self.count(checkpoint) >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(name: &str, seed: u8) -> WitnessKey {
        CosigningKey::from_bytes(name, &[seed; 32])
            .unwrap()
            .witness_key()
    }

    fn checkpoint() -> SignedCheckpoint {
        let t = crate::event::TenantId::parse("acme").unwrap();
        super::super::SigningKey::from_bytes("audit", &[9; 32])
            .unwrap()
            .sign(super::super::Checkpoint::new(
                &t,
                3,
                crate::chain::Link([7; 32]),
                crate::clock::Timestamp::from_unix_micros(5),
            ))
    }

    #[test]
    fn witness_keys_debug_as_name_and_id_and_never_show_the_secret() {
        let k = CosigningKey::from_bytes("w-a", &[1; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "CosigningKey { name: \"w-a\", .. }");
        let w = k.witness_key();
        assert_eq!(
            format!("{w:?}"),
            format!("WitnessKey(w-a+{})", hex::encode(w.id))
        );
    }

    #[test]
    fn cosigning_again_replaces_only_that_witness_line() {
        let a = CosigningKey::from_bytes("w", &[1; 32]).unwrap();
        let b = CosigningKey::from_bytes("w", &[2; 32]).unwrap();
        let c = CosigningKey::from_bytes("w-c", &[1; 32]).unwrap();
        let mut cp = checkpoint();
        a.cosign(&mut cp, 10);
        b.cosign(&mut cp, 11);
        c.cosign(&mut cp, 12);
        a.cosign(&mut cp, 13);
        // Same name, other key (b) and same key, other name (c) are other lines.
        let lines: Vec<(&str, u64)> = cp
            .cosignatures
            .iter()
            .map(|x| (x.name.as_str(), x.timestamp))
            .collect();
        assert_eq!(lines, [("w", 11), ("w-c", 12), ("w", 13)]);
    }

    #[test]
    fn a_cosignature_counts_only_under_its_witness_name_and_key_id() {
        let a = CosigningKey::from_bytes("w-a", &[1; 32]).unwrap();
        let policy = WitnessPolicy::new(vec![a.witness_key()], 1).unwrap();
        let mut cp = checkpoint();
        a.cosign(&mut cp, 10);
        assert_eq!(policy.count(&cp), 1);
        let mut renamed = cp.clone();
        renamed.cosignatures[0].name = "w-b".to_owned();
        assert_eq!(policy.count(&renamed), 0);
        let mut other_id = cp.clone();
        other_id.cosignatures[0].key_id[0] ^= 1;
        assert_eq!(policy.count(&other_id), 0);
        let mut forged = cp;
        forged.cosignatures[0].signature[0] ^= 1;
        assert_eq!(policy.count(&forged), 0);
    }

    #[test]
    fn threshold_is_one_to_the_number_of_distinct_public_keys() {
        let keys = || vec![witness("w-a", 1), witness("w-b", 2), witness("w-a2", 1)];
        // Two distinct public keys ("w-a2" is w-a's key under another name).
        assert!(WitnessPolicy::new(keys(), 0).is_err());
        assert_eq!(WitnessPolicy::new(keys(), 1).unwrap().threshold, 1);
        assert_eq!(WitnessPolicy::new(keys(), 2).unwrap().threshold, 2);
        assert!(WitnessPolicy::new(keys(), 3).is_err());
        assert!(WitnessPolicy::new(Vec::new(), 0).is_err());
        assert!(WitnessPolicy::new(Vec::new(), 1).is_err());
    }

    #[test]
    fn a_key_listed_under_several_names_is_one_witness_the_first_listing_kept() {
        let p = WitnessPolicy::new(
            vec![witness("w-a", 1), witness("w-b", 2), witness("w-a2", 1)],
            1,
        )
        .unwrap();
        let names: Vec<&str> = p.witnesses.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["w-a", "w-b"]);
    }

    #[test]
    fn a_cosignature_is_ed25519_over_the_c2sp_cosignature_v1_message_and_key_id() {
        use sha2::{Digest as _, Sha256};
        // Built from the C2SP tlog-cosignature text, not from this module's
        // helpers: key id SHA-256(name || "\n" || 0x04 || public key)[..4],
        // message "cosignature/v1\ntime <decimal seconds>\n" || note body,
        // line "— <name> base64(key id || big-endian time || signature)".
        let k = CosigningKey::from_bytes("w-a", &[1; 32]).unwrap();
        let public = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mut cp = checkpoint();
        k.cosign(&mut cp, 1_764_000_000);
        let c = &cp.cosignatures[0];
        let id: [u8; 4] = Sha256::digest([&b"w-a\n\x04"[..], public.as_bytes()].concat())[..4]
            .try_into()
            .unwrap();
        assert_eq!(
            (c.name.as_str(), c.key_id, c.timestamp),
            ("w-a", id, 1_764_000_000)
        );
        let msg = format!("cosignature/v1\ntime 1764000000\n{}", cp.checkpoint.body());
        let sig = ed25519_dalek::Signature::from_bytes(&c.signature);
        assert!(public.verify_strict(msg.as_bytes(), &sig).is_ok());
        let blob = [&id[..], &1_764_000_000u64.to_be_bytes(), &c.signature].concat();
        assert_eq!(c.line(), format!("\u{2014} w-a {}\n", B64.encode(&blob)));
        assert_eq!(Cosignature::from_blob("w-a", &blob).unwrap(), *c);
        for len in [COSIGNATURE_LEN - 1, COSIGNATURE_LEN + 1] {
            let mut other = blob.clone();
            other.resize(len, 0);
            assert!(
                Cosignature::from_blob("w-a", &other).is_err(),
                "{len} bytes"
            );
        }
        let vkey = B64.encode([&[4u8][..], public.as_bytes()].concat());
        let text = format!("w-a+{}+{vkey}", hex::encode(id));
        assert_eq!(k.witness_key().to_text(), text);
        assert_eq!(WitnessKey::from_text(&text).unwrap(), k.witness_key());
    }

    #[test]
    fn a_checkpoint_meets_the_policy_from_threshold_distinct_witnesses_up() {
        let w: Vec<CosigningKey> = (1..=3)
            .map(|i| CosigningKey::from_bytes(&format!("w-{i}"), &[i; 32]).unwrap())
            .collect();
        let policy =
            |n| WitnessPolicy::new(w.iter().map(CosigningKey::witness_key).collect(), n).unwrap();
        let mut cp = checkpoint();
        w[0].cosign(&mut cp, 10);
        w[1].cosign(&mut cp, 11);
        // A witness's line twice, and a witness outside the policy, add nothing.
        cp.cosignatures.push(cp.cosignatures[0].clone());
        CosigningKey::from_bytes("w-x", &[9; 32])
            .unwrap()
            .cosign(&mut cp, 12);
        assert_eq!(policy(1).count(&cp), 2);
        let met: Vec<bool> = (1..=3).map(|n| policy(n).accepts(&cp)).collect();
        assert_eq!(met, [true, true, false]);
    }
}
