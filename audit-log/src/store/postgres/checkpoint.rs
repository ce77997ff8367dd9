//! Signing checkpoints of the PostgreSQL store, each carrying the Merkle
//! root of the records it covers.
//!
//! The root is computed from the records, in the same `REPEATABLE READ`
//! snapshot the checkpoint's size and head come from, and incrementally: a
//! checkpoint row keeps the right edge of the tree beside its note (column
//! `frontier`, migration 2). The next checkpoint starts from the newest edge
//! whose roots hash to the root of a note this key signed (an edge any other
//! role wrote is skipped, never trusted: forging one that passes needs a
//! SHA-256 collision or the key), reads the records since that note's size
//! and extends the edge only while each record chains from that note's
//! signed head to the head being signed.
//!
//! Cost: `O(records since the newest such checkpoint + log n)` hashes and
//! one keyset-paged read of those records; the first checkpoint of a chain
//! (or one with no usable edge) reads every record once, `O(n)`. Records
//! that do not chain make signing refuse ([`Error::Corrupt`]), so a root that
//! does not match the records is never signed.
//!
//! A chain whose prefix was pruned keeps its roots only from a rooted
//! checkpoint with an edge at or after its prune point; without one its
//! checkpoints carry the head only (the pruned leaves are gone).

use super::*;
use crate::merkle::{Frontier, Hash};
use crate::store::extend_chained;

/// Checkpoint rows examined per query while looking for a usable edge.
const EDGE_PAGE: i64 = 16;
/// Checkpoint rows examined in all before giving up on a stored edge. Any
/// role that may INSERT into the table can add rows (a forged or copied
/// note, a junk edge) that sort first; without a bound each checkpoint would
/// verify every one of them. Past it the root is computed from the records
/// (`O(n)`, as for a chain's first checkpoint), never from an unchecked edge.
const MAX_EDGE_ROWS: usize = 64;

/// Why a checkpoint is refused: the records do not chain at `seq`.
fn refuse(seq: u64) -> Error {
    Error::Corrupt {
        what: "records do not chain; refusing to sign a checkpoint over them",
        file: "hisn_audit_log".to_owned(),
        offset: seq,
    }
}

impl PgStore {
    /// Sign and keep a checkpoint of `tenant`'s current head, carrying the
    /// Merkle root of its records, all read in one `REPEATABLE READ`
    /// transaction. The root is the tree's right edge kept beside the newest
    /// note this key signed whose root that edge hashes to (an edge written
    /// by anyone else is skipped), extended with the records since, which
    /// must chain from that note's head to the head signed: cost
    /// `O(records since + log n)`; the first checkpoint of a chain reads
    /// every record once.
    /// The new note is kept with its edge (`hisn_audit_checkpoint.frontier`,
    /// migration 2). A pruned chain without a rooted checkpoint since its
    /// prune point is signed with the head only.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`]; [`Error::Corrupt`] when the
    /// records since the last usable checkpoint do not chain to the head
    /// (tampered rows): nothing is signed.
    pub async fn checkpoint(
        &self,
        tenant: &TenantId,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<SignedCheckpoint> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let b = Self::bounds_on(&mut tx, tenant).await?;
        let frontier = Self::frontier_for(&mut tx, tenant, &b, key).await?;
        let mut unsigned = Checkpoint::new(tenant, b.size, b.head, now);
        if let Some(f) = &frontier {
            unsigned = unsigned.with_root(f.root());
        }
        let cp = key.sign(unsigned);
        let edge: Option<Vec<u8>> =
            frontier.map(|f| f.roots().flat_map(|h| h.iter().copied()).collect());
        sqlx::query(
            "INSERT INTO hisn_audit_checkpoint (tenant, size, note, frontier) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(i64_of(b.size)?)
        .bind(cp.to_note())
        .bind(edge)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cp)
    }

    /// The Merkle tree's right edge over records `0..b.size`: the newest
    /// signed edge extended with the records since, or every record from
    /// genesis; `None` for a pruned chain without a usable edge.
    async fn frontier_for(
        conn: &mut PgConnection,
        tenant: &TenantId,
        b: &Bounds,
        key: &SigningKey,
    ) -> Result<Option<Frontier>> {
        let (frontier, prev) = match Self::signed_edge(conn, tenant, b, key).await? {
            Some(start) => start,
            None if b.first_seq == 0 => (Frontier::new(), Link::GENESIS),
            None => {
                tracing::warn!(tenant = %tenant, "audit store: pruned chain without a rooted checkpoint since its prune point; signing the head only");
                return Ok(None);
            }
        };
        let (mut frontier, mut prev) = (frontier, prev);
        // Through every newer note of the key on the way (its head, and its
        // root when it has one): records edited and relinked after the
        // edge's note still chain from its head, but not to a later note's.
        for (size, head, root) in Self::notes_between(conn, tenant, frontier.size(), b, key).await?
        {
            let to = Bounds {
                size,
                head,
                ..Bounds::EMPTY
            };
            frontier = Self::extend_from_rows(conn, tenant, frontier, prev, &to).await?;
            if root.is_some_and(|r| r != frontier.root()) {
                return Err(refuse(size.saturating_sub(1)));
            }
            prev = head;
        }
        Self::extend_from_rows(conn, tenant, frontier, prev, b)
            .await
            .map(Some)
    }

    /// Size, head and root of each note `key` signed for `tenant` with a
    /// size in `(after, b.size]`, ascending (notes that do not parse or
    /// verify are skipped; two verified notes of one size that disagree
    /// refuse, as a fork).
    async fn notes_between(
        conn: &mut PgConnection,
        tenant: &TenantId,
        after: u64,
        b: &Bounds,
        key: &SigningKey,
    ) -> Result<Vec<(u64, Link, Option<Hash>)>> {
        let keys = TrustedKeys::new().with(key.verifying_key());
        let origin = crate::checkpoint::origin_for(tenant);
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT size, note FROM hisn_audit_checkpoint \
             WHERE tenant = $1 AND size > $2 AND size <= $3 ORDER BY size",
        )
        .bind(tenant.as_str())
        .bind(i64_of(after)?)
        .bind(i64_of(b.size)?)
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<(u64, Link, Option<Hash>)> = Vec::new();
        for (size, note) in rows {
            let Ok(cp) = SignedCheckpoint::parse(&note) else {
                continue;
            };
            if cp.verify(&keys).is_err() {
                continue;
            }
            let c = cp.checkpoint;
            if c.origin != origin || u64::try_from(size).ok() != Some(c.size) {
                continue;
            }
            match out.last_mut() {
                Some((s, h, r)) if *s == c.size => {
                    if *h != c.head || r.zip(c.root).is_some_and(|(a, b)| a != b) {
                        return Err(refuse(c.size.saturating_sub(1)));
                    }
                    *r = r.or(c.root);
                }
                _ => out.push((c.size, c.head, c.root)),
            }
        }
        Ok(out)
    }

    /// The newest stored edge (size at least `b.first_seq`, at most `b.size`)
    /// that hashes to the root of a note `key` signed, with that note's head.
    async fn signed_edge(
        conn: &mut PgConnection,
        tenant: &TenantId,
        b: &Bounds,
        key: &SigningKey,
    ) -> Result<Option<(Frontier, Link)>> {
        let keys = TrustedKeys::new().with(key.verifying_key());
        let origin = crate::checkpoint::origin_for(tenant);
        // Keyset paging on (size, note), newest first.
        let (mut below_size, mut below_note) = (i64_of(b.size)?.saturating_add(1), String::new());
        let mut examined = 0usize;
        loop {
            if examined >= MAX_EDGE_ROWS {
                tracing::warn!(tenant = %tenant, examined, "audit store: no usable Merkle edge among the newest checkpoint rows; computing the root from the records");
                return Ok(None);
            }
            let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
                "SELECT size, note, frontier FROM hisn_audit_checkpoint \
                 WHERE tenant = $1 AND frontier IS NOT NULL AND size >= $2 \
                   AND (size, note) < ($3, $4) \
                 ORDER BY size DESC, note DESC LIMIT $5",
            )
            .bind(tenant.as_str())
            .bind(i64_of(b.first_seq)?)
            .bind(below_size)
            .bind(&below_note)
            .bind(EDGE_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            examined += rows.len();
            for (size, note, edge) in &rows {
                let Ok(cp) = SignedCheckpoint::parse(note) else {
                    continue;
                };
                let c = &cp.checkpoint;
                let Some(root) = c.root else { continue };
                if c.origin != origin
                    || u64::try_from(*size).ok() != Some(c.size)
                    || edge.len() % 32 != 0
                    || cp.verify(&keys).is_err()
                {
                    continue;
                }
                let roots: Vec<Hash> = edge
                    .chunks_exact(32)
                    .filter_map(|h| <Hash>::try_from(h).ok())
                    .collect();
                if let Some(f) = Frontier::from_roots(c.size, &roots)
                    && f.root() == root
                {
                    return Ok(Some((f, c.head)));
                }
                tracing::warn!(tenant = %tenant, size, "audit store: a checkpoint's Merkle edge does not hash to its signed root; skipped");
            }
            match rows.last() {
                Some((size, note, _)) if i64::try_from(rows.len()) == Ok(EDGE_PAGE) => {
                    (below_size, below_note) = (*size, note.clone());
                }
                _ => return Ok(None),
            }
        }
    }

    /// `frontier` (ending at a record whose link is `prev`) extended with the
    /// records up to `b.size`, read in pages and hashed on a blocking thread;
    /// refused unless they chain from `prev` to `b.head`.
    async fn extend_from_rows(
        conn: &mut PgConnection,
        tenant: &TenantId,
        mut frontier: Frontier,
        mut prev: Link,
        b: &Bounds,
    ) -> Result<Frontier> {
        while frontier.size() < b.size {
            let from = frontier.size();
            let records = Self::read_page(conn, tenant, from, b.size, VERIFY_PAGE).await?;
            let Some(last) = records.last().map(|r| r.link) else {
                return Err(refuse(from));
            };
            let t = tenant.clone();
            let extended = join_blocking(tokio::task::spawn_blocking(move || {
                extend_chained(&t, frontier, prev, &records, &last)
            }))
            .await?;
            frontier = extended.map_err(refuse)?;
            prev = last;
        }
        if prev != b.head {
            return Err(refuse(b.size.saturating_sub(1)));
        }
        Ok(frontier)
    }
}
