//! Signing checkpoints of the file store: never over damage.

use super::*;
use crate::checkpoint::TrustedKeys;
use crate::merkle::{Frontier, Hash};
use crate::verify::Verdict;

/// What [`FileStore::checkpoint_verified`] signed and refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckpointRun {
    /// Checkpoints signed (and kept in the store), one per verified tenant.
    pub signed: Vec<SignedCheckpoint>,
    /// Tenants not signed because their chain does not verify: the verdict
    /// and the first failing sequence number.
    pub refused: Vec<(TenantId, Verdict, Option<u64>)>,
}

/// Attempts when a read-only snapshot catches a live writer mid-write.
const SNAPSHOT_ATTEMPTS: usize = 3;

impl FileStore {
    /// Sign the current head of every tenant's chain (or only `tenant`), keep
    /// the checkpoints in the store and return them for publishing. A tenant
    /// whose chain is damaged (appends refused since the store was opened) is
    /// never signed: [`Error::Corrupt`] when it was asked for by name, skipped
    /// otherwise. Use [`checkpoint_verified`](Self::checkpoint_verified) to
    /// also re-verify the records before signing.
    ///
    /// Each checkpoint carries the Merkle root of the records it covers: the
    /// writer's, computed from the records as the store was opened and
    /// appended to (no extra reads); on a read-only open, or a chain pruned
    /// before this open, the tree's right edge at the newest rooted
    /// checkpoint this key signed (kept beside its note in the store's
    /// checkpoint log, or from the tiles), used only when it hashes to that
    /// signed root and extended with the records since, which must chain
    /// (see [`checkpoint_verified`](Self::checkpoint_verified)). None on a
    /// chain pruned with no such checkpoint since its prune point, or when
    /// the records did not chain or disagreed with a checkpoint kept in the
    /// store.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::NotFound`] for an unknown tenant,
    /// [`Error::Corrupt`] for a damaged one.
    pub fn checkpoint_now(
        &self,
        tenant: Option<&TenantId>,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<Vec<SignedCheckpoint>> {
        let heads: Vec<(TenantId, Bounds, Option<Frontier>)> = {
            let index = self.shared.index.read();
            match tenant {
                Some(t) => {
                    let ti = index.get(t).ok_or(Error::NotFound)?;
                    if let Some(at) = ti.damage_at {
                        return Err(damaged(t, at));
                    }
                    vec![(t.clone(), ti.bounds(), ti.frontier.clone())]
                }
                None => index
                    .iter()
                    .filter(|(_, ti)| ti.damage_at.is_none())
                    .map(|(t, ti)| (t.clone(), ti.bounds(), ti.frontier.clone()))
                    .collect(),
            }
        };
        let mut out = Vec::new();
        for (t, b, frontier) in heads {
            // The chain was cut back below a size this key already signed:
            // a checkpoint of the shorter chain would sign a fork of it.
            if let Some(signed) = self.shared.signed_beyond(&t, b.size, key)? {
                if tenant.is_some() {
                    return Err(cut_below_signed(&t, b.size));
                }
                tracing::error!(tenant = %t, size = b.size, signed,
                    "audit store: chain ends below a checkpoint this key signed; not signing");
                continue;
            }
            let frontier = match frontier {
                Some(f) => Some(f),
                None => self.frontier_from_store(&t, &b, key)?,
            };
            let root = frontier.as_ref().map(Frontier::root);
            let cp = key.sign(rooted(Checkpoint::new(&t, b.size, b.head, now), root));
            self.shared.store_checkpoint(&t, &cp, frontier.as_ref())?;
            out.push(cp);
        }
        Ok(out)
    }

    /// Verify each tenant's chain (or only `tenant`'s) and sign the head it
    /// verified to; a chain that does not verify is refused, never cut or
    /// signed short. Verification starts at the newest checkpoint this key
    /// signed that still matches (so its cost is the records since then),
    /// else at the start of the chain.
    ///
    /// Works on a store opened with [`FileStore::open_read_only`] while
    /// another process holds it open for writing: signing needs only a
    /// consistent view of the heads. A read-only store re-reads the
    /// directory first (and again, up to three times, when it caught a
    /// frame being written); a record appended meanwhile is simply not
    /// covered yet.
    ///
    /// The checkpoint carries the Merkle root of its records (the writer's;
    /// on a read-only open, the tree's right edge at the newest rooted
    /// checkpoint this key signed, from the tiles when they hash to its root
    /// or else from the records, extended with the records since, which
    /// must chain to the head), so it costs `O(log n)` tile reads plus the
    /// records since; with no such checkpoint every record is read once.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::NotFound`] for an unknown tenant.
    pub fn checkpoint_verified(
        &self,
        tenant: Option<&TenantId>,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<CheckpointRun> {
        let keys = TrustedKeys::new().with(key.verifying_key());
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.tx.is_none() {
                *self.shared.index.write() = load(&self.shared.dir, false)?.index;
            }
            let tenants = match tenant {
                Some(t) => {
                    self.bounds(t)?;
                    vec![t.clone()]
                }
                None => self.tenants()?,
            };
            let mut run = CheckpointRun {
                signed: Vec::new(),
                refused: Vec::new(),
            };
            let mut heads = Vec::new();
            for t in tenants {
                let (b, frontier) = self.signing_view(&t)?;
                let frontier = match frontier {
                    Some(f) => Some(f),
                    None => self.frontier_from_store(&t, &b, key)?,
                };
                let root = frontier.as_ref().map(Frontier::root);
                let candidate = key.sign(rooted(Checkpoint::new(&t, b.size, b.head, now), root));
                match self.verify_for_signing(&t, &b, &keys, &candidate)? {
                    None => heads.push((t, candidate, frontier)),
                    Some((verdict, seq)) => run.refused.push((t, verdict, seq)),
                }
            }
            if !run.refused.is_empty() && self.tx.is_none() && attempt < SNAPSHOT_ATTEMPTS {
                // A live writer may have been caught mid-frame: look again.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            for (t, cp, frontier) in heads {
                self.shared.store_checkpoint(&t, &cp, frontier.as_ref())?;
                run.signed.push(cp);
            }
            for (t, verdict, seq) in &run.refused {
                tracing::error!(tenant = %t, verdict = ?verdict, seq = ?seq,
                    "audit store: chain does not verify; refusing to sign a checkpoint over it");
            }
            return Ok(run);
        }
    }

    /// Whether `candidate` (the head in `b`, signed) may be kept: `None` when
    /// the chain verifies up to it, else the verdict and failing record. Fast
    /// path: the records since the newest checkpoint of `keys` chain from its
    /// head to the candidate's. Otherwise the whole chain is verified with the
    /// candidate as an anchor (which also covers a prune since then).
    fn verify_for_signing(
        &self,
        tenant: &TenantId,
        b: &Bounds,
        keys: &TrustedKeys,
        candidate: &SignedCheckpoint,
    ) -> Result<Option<(Verdict, Option<u64>)>> {
        let stored = self.checkpoints(tenant)?;
        // A checkpoint of these keys beyond the head: the chain was cut back
        // below a size already signed (see `Shared::signed_beyond`).
        if signed_beyond(&stored, tenant, b.size, keys).is_some() {
            return Ok(Some((Verdict::Truncated, Some(b.size))));
        }
        let newest = stored
            .into_iter()
            .filter(|c| c.checkpoint.origin == crate::checkpoint::origin_for(tenant))
            .filter(|c| c.checkpoint.size >= b.first_seq.max(1) && c.checkpoint.size <= b.size)
            .filter(|c| c.verify(keys).is_ok())
            .max_by_key(|c| c.checkpoint.size);
        if let Some(cp) = newest {
            let r = self.verify_from(tenant, &cp, keys)?;
            if r.verdict.is_ok() && r.size == b.size && r.head == b.head {
                return Ok(None);
            }
        }
        let r = self.verify(tenant, Some(keys), std::slice::from_ref(candidate))?;
        if r.verdict == Verdict::Intact && r.size == b.size && r.head == b.head {
            Ok(None)
        } else {
            Ok(Some((r.verdict, r.seq)))
        }
    }
}

/// Records read per chunk while a whole chain is verified for signing.
const WHOLE_CHUNK: u64 = 4096;

impl FileStore {
    /// Verify `tenant`'s whole chain from record 0 and sign its head with the
    /// Merkle root of every record, keeping the checkpoint in the store with
    /// the tree's right edge (so a later prune keeps its roots). The records
    /// are read in chunks (memory stays bounded) and checked as
    /// [`Verifier::verify_range`](crate::Verifier::verify_range) checks them
    /// from genesis: any break, unreadable record or a head other than the
    /// chain's refuses, and so do records that disagree with a note of `key`
    /// kept in the store (its head and root at its size) or a note of `key`
    /// beyond the head (the chain was cut back). `hisn audit checkpoint` signs this way: `O(n)`, but
    /// it vouches for every record, not only those since the last
    /// checkpoint ([`checkpoint_verified`](Self::checkpoint_verified)).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant or a pruned chain (the
    /// tree's first leaves are gone: use `checkpoint_verified`),
    /// [`Error::Corrupt`] when the records do not verify, [`Error::Io`].
    pub fn checkpoint_from_records(
        &self,
        tenant: &TenantId,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<SignedCheckpoint> {
        let b = {
            let index = self.shared.index.read();
            index.get(tenant).ok_or(Error::NotFound)?.bounds()
        };
        if b.first_seq > 0 {
            return Err(Error::NotFound);
        }
        // The records must also agree with every note of this key the store
        // kept (head, and root when it has one, at its size), and none may
        // lie beyond the head: a chain edited and relinked below a kept
        // note, or cut back below one, verifies on its own.
        let keys = TrustedKeys::new().with(key.verifying_key());
        let mut marks: HashMap<u64, Vec<(Link, Option<Hash>)>> = HashMap::new();
        for (c, _) in self.shared.key_notes(tenant, &keys)? {
            marks.entry(c.size).or_default().push((c.head, c.root));
        }
        let mut disagrees = marks.keys().any(|s| *s > b.size);
        let mut frontier = Frontier::new();
        let records = (0..b.size.div_ceil(WHOLE_CHUNK))
            .flat_map(|c| {
                let from = c * WHOLE_CHUNK;
                let to = from.saturating_add(WHOLE_CHUNK).min(b.size);
                self.shared
                    .read_range(tenant, from, to)
                    .unwrap_or_else(|e| vec![Err(e)])
            })
            .map(|r| r.map_err(|_| crate::error::malformed("record")))
            .inspect(|r| {
                if let Ok(r) = r {
                    frontier.push(crate::merkle::leaf_hash(&crate::chain::record_digest(
                        &r.bytes,
                    )));
                    if let Some(ms) = marks.get(&frontier.size()) {
                        let root = frontier.root();
                        disagrees |= !ms
                            .iter()
                            .all(|(h, m)| *h == r.link && m.is_none_or(|m| m == root));
                    }
                }
            });
        let report = crate::verify::Verifier::new(tenant, &[], None)
            .verify_range(crate::verify::Start::Genesis, records)?;
        if disagrees
            || !report.breaks.is_empty()
            || report.size != b.size
            || report.head != b.head
            || frontier.size() != b.size
        {
            return Err(Error::Corrupt {
                what: "records do not chain; refusing to sign a checkpoint over them",
                file: tenant_dir_name(tenant),
                offset: report.seq.unwrap_or(report.size),
            });
        }
        let cp = key.sign(Checkpoint::new(tenant, b.size, b.head, now).with_root(frontier.root()));
        self.shared.store_checkpoint(tenant, &cp, Some(&frontier))?;
        Ok(cp)
    }

    /// The bounds of `tenant`'s chain and the writer's Merkle root over
    /// them, read together.
    fn signing_view(&self, tenant: &TenantId) -> Result<(Bounds, Option<Frontier>)> {
        let index = self.shared.index.read();
        let ti = index.get(tenant).ok_or(Error::NotFound)?;
        Ok((ti.bounds(), ti.frontier.clone()))
    }

    /// The Merkle tree's right edge over `b` when no writer computed it (a
    /// read-only open, a pruned chain after a restart, or a writable open
    /// whose records failed its checks), from data checked against the
    /// records, never from stored hashes alone. It starts at the newest
    /// checkpoint `key` signed with a root whose edge is known: the edge kept
    /// beside its note, else (a chain from record 0) the tiles, each used only
    /// when it hashes to that signed root, `O(log n)`; and is extended with
    /// the records since, which must chain from that checkpoint's head to
    /// `b.head`. Without such a checkpoint a chain from record 0 is read
    /// whole (`O(n)`) and must chain. `None` for a pruned chain without a
    /// rooted checkpoint since its prune point whose edge was kept, or for
    /// records that do not chain.
    ///
    /// On a pruned chain a found edge also becomes the writer's (when nothing
    /// was appended meanwhile), so the next checkpoints, automatic ones
    /// included, carry the root at no cost.
    fn frontier_from_store(
        &self,
        tenant: &TenantId,
        b: &Bounds,
        key: &SigningKey,
    ) -> Result<Option<Frontier>> {
        let keys = TrustedKeys::new().with(key.verifying_key());
        let read = |from, to| self.shared.read_range(tenant, from, to);
        // A chain from record 0: the tiles, else (the newest candidate only,
        // `O(n)` once) the records before the checkpoint.
        let newest = std::cell::Cell::new(true);
        let fallback = |cp: &Checkpoint| -> Result<Option<Frontier>> {
            if b.first_seq != 0 {
                return Ok(None);
            }
            let src = crate::store::plan::StoreNodes::new(self, tenant, "");
            let tree = &mut crate::merkle::tiles::Tree::new(&src, cp.size);
            let tiled = Frontier::from_tree(tree)?.filter(|f| Some(f.root()) == cp.root);
            if tiled.is_some() || !newest.replace(false) {
                return Ok(tiled);
            }
            let before = Bounds {
                size: cp.size,
                head: cp.head,
                ..Bounds::EMPTY
            };
            Ok(crate::store::frontier_from_records(
                &read,
                tenant,
                Frontier::new(),
                Link::GENESIS,
                &before,
            )?
            .filter(|f| Some(f.root()) == cp.root))
        };
        let found = match self
            .shared
            .frontier_from_edges(tenant, b, &keys, &fallback)?
        {
            Some(decided) => decided,
            None if b.first_seq == 0 => crate::store::frontier_from_records(
                &read,
                tenant,
                Frontier::new(),
                Link::GENESIS,
                b,
            )?,
            None => {
                tracing::warn!(tenant = %tenant, "audit store: pruned chain without a rooted checkpoint (with its Merkle edge) since its prune point; signing the head only");
                None
            }
        };
        if let Some(f) = found.as_ref().filter(|_| b.first_seq > 0) {
            self.shared.adopt_frontier(tenant, b, f);
        }
        Ok(found)
    }
}

/// Rooted checkpoints examined, newest first, for a usable Merkle edge.
const EDGE_CANDIDATES: usize = 8;

impl Shared {
    /// The largest size, beyond `size`, of a checkpoint `key` signed for
    /// `tenant` in the tenant's log: the chain was cut back below a size this
    /// key already signed (an attacker truncating the segments at a record
    /// boundary, or a crash under `Durability::OsBuffered`/`None`). Notes of
    /// other keys or origins do not count: anyone can write a note.
    pub(super) fn signed_beyond(
        &self,
        tenant: &TenantId,
        size: u64,
        key: &SigningKey,
    ) -> Result<Option<u64>> {
        let keys = TrustedKeys::new().with(key.verifying_key());
        Ok(signed_beyond(
            &self.checkpoints(tenant)?,
            tenant,
            size,
            &keys,
        ))
    }

    /// The Merkle edge over `b` from the newest checkpoint signed by `keys`
    /// (size within `b`, at or after its prune point) whose edge is known:
    /// the one kept beside its note, else `fallback`'s (checked against the
    /// signed root by whoever gives it), extended with the records since,
    /// which must chain from its signed head to `b.head` and reach the head
    /// (and root, when it has one) of every newer note of `keys` on the way.
    /// With no rooted note of `keys` but head-only ones, a chain from record
    /// 0 is read whole through them. `None` when `keys` signed no note in
    /// range (the caller reads the chain itself); `Some(None)` when no candidate has
    /// a usable edge, the records do not chain from the first one that does
    /// or disagree with a newer note, or a note of `keys` lies beyond
    /// `b.size` (a rollback): no root is signed over them, and verification
    /// names the damage.
    pub(super) fn frontier_from_edges(
        &self,
        tenant: &TenantId,
        b: &Bounds,
        keys: &TrustedKeys,
        fallback: &dyn Fn(&Checkpoint) -> Result<Option<Frontier>>,
    ) -> Result<Option<Option<Frontier>>> {
        // Every note of `keys` in range, rooted or not: the records extended
        // from an older edge must agree with each newer one (its head, and
        // its root when it has one), not only chain from the older head.
        let mut signed = self.key_notes(tenant, keys)?;
        signed.retain(|(c, _)| c.size > 0 && c.size >= b.first_seq);
        // A note beyond the head: the chain was cut back below a size the key
        // signed (or a writer appended and signed since `b` was read); the
        // records up to `b` were never compared with it, so no root.
        if signed.iter().any(|(c, _)| c.size > b.size) {
            return Ok(Some(None));
        }
        signed.retain(|(c, _)| c.size <= b.size);
        let mut marks: Vec<Checkpoint> = signed.iter().map(|(c, _)| c.clone()).collect();
        marks.sort_by_key(|c| c.size);
        let mut candidates: Vec<(Checkpoint, Option<Frontier>)> = signed
            .into_iter()
            .filter(|(c, _)| c.root.is_some())
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0.size));
        let read = |from, to| self.read_range(tenant, from, to);
        // `f` (ending at a record whose link is `prev`) extended to `b`
        // through every note at or after its size.
        let through = |mut f: Frontier, mut prev: Link| -> Result<Option<Frontier>> {
            let from = f.size();
            for m in marks.iter().filter(|m| m.size >= from) {
                let to = Bounds {
                    size: m.size,
                    head: m.head,
                    ..Bounds::EMPTY
                };
                match crate::store::frontier_from_records(&read, tenant, f, prev, &to)? {
                    Some(g) if m.root.is_none_or(|r| r == g.root()) => f = g,
                    _ => return Ok(None),
                }
                prev = m.head;
            }
            crate::store::frontier_from_records(&read, tenant, f, prev, b)
        };
        if candidates.is_empty() {
            // No rooted note: a chain from record 0 is read whole, through
            // the head-only notes of `keys` (`None` without any, for the
            // caller's own read).
            return match (marks.is_empty(), b.first_seq) {
                (true, _) => Ok(None),
                (false, 0) => through(Frontier::new(), Link::GENESIS).map(Some),
                (false, _) => Ok(Some(None)),
            };
        }
        for (cp, edge) in candidates.into_iter().take(EDGE_CANDIDATES) {
            let start = match edge {
                Some(e) => Some(e),
                None => fallback(&cp)?,
            };
            if let Some(f) = start {
                return through(f, cp.head).map(Some);
            }
        }
        Ok(Some(None))
    }

    /// The notes of `tenant` in the store's checkpoint log that `keys`
    /// signed for its origin, each with the edge kept beside it (see
    /// [`Self::checkpoint_edges`]).
    fn key_notes(
        &self,
        tenant: &TenantId,
        keys: &TrustedKeys,
    ) -> Result<Vec<(Checkpoint, Option<Frontier>)>> {
        let origin = crate::checkpoint::origin_for(tenant);
        Ok(self
            .checkpoint_edges(tenant)?
            .into_iter()
            .filter(|(c, _)| c.checkpoint.origin == origin && c.verify(keys).is_ok())
            .map(|(c, e)| (c.checkpoint, e))
            .collect())
    }

    /// Make `f` (the edge over `b`) the writer's edge of `tenant`, unless the
    /// writer has one or the chain changed since `b` was read.
    pub(super) fn adopt_frontier(&self, tenant: &TenantId, b: &Bounds, f: &Frontier) {
        let mut index = self.index.write();
        if let Some(ti) = index.get_mut(tenant)
            && ti.frontier.is_none()
            && ti.damage_at.is_none()
            && ti.bounds() == *b
            && f.size() == b.size
        {
            ti.frontier = Some(f.clone());
        }
    }
}

/// `cp` carrying `root`, when there is one.
fn rooted(cp: Checkpoint, root: Option<Hash>) -> Checkpoint {
    match root {
        Some(r) => cp.with_root(r),
        None => cp,
    }
}

/// [`Shared::signed_beyond`] over a checkpoint log already read.
pub(super) fn signed_beyond(
    stored: &[SignedCheckpoint],
    tenant: &TenantId,
    size: u64,
    keys: &TrustedKeys,
) -> Option<u64> {
    let origin = crate::checkpoint::origin_for(tenant);
    stored
        .iter()
        .filter(|c| c.checkpoint.size > size && c.checkpoint.origin == origin)
        .filter(|c| c.verify(keys).is_ok())
        .map(|c| c.checkpoint.size)
        .max()
}

fn cut_below_signed(tenant: &TenantId, size: u64) -> Error {
    Error::Corrupt {
        what: "chain ends below a checkpoint this key signed; not signing a fork of it",
        file: tenant_dir_name(tenant),
        offset: size,
    }
}

fn damaged(tenant: &TenantId, at: u64) -> Error {
    Error::Corrupt {
        what: "chain damaged; not signing a checkpoint over it",
        file: tenant_dir_name(tenant),
        offset: at,
    }
}
