//! The verifier's walk over records whose header disagrees with their place
//! in the chain (`Verifier::run`): the header must name the chain's tenant and
//! the record's position before its link counts, whoever recomputed the links.

use hisn_audit_log::{
    BrokenRange, Link, Start, StoredRecord, TenantId, Verdict, Verifier, chain_link, encode_record,
    record_digest,
};

use crate::common::*;

const N: u64 = 10;

/// `N` correctly chained records of `t`.
fn chain(t: &TenantId) -> Vec<StoredRecord> {
    let mut recs: Vec<StoredRecord> = (0..N)
        .map(|i| StoredRecord {
            seq: i,
            bytes: encode_record(i, &event(t, i)).unwrap(),
            link: Link::GENESIS,
        })
        .collect();
    crate::anchors::relink(t, &mut recs, Link::GENESIS);
    recs
}

/// Verify without keys: an intact chain is the unanchored tail from 0.
fn walk(t: &TenantId, recs: &[StoredRecord]) -> (Verdict, Option<u64>, Vec<BrokenRange>) {
    let r = Verifier::new(t, &[], None)
        .verify_log(Start::Genesis, recs.iter().map(Ok))
        .unwrap();
    (r.verdict, r.seq, r.breaks)
}

/// The chain of `t` with record `i` replaced by `bytes`, its stored link
/// left alone, and the links from record `i + 1` on recomputed over it (the
/// link record `i` would have at its place).
fn replaced_then_relinked_after(t: &TenantId, i: usize, bytes: Vec<u8>) -> Vec<StoredRecord> {
    let mut recs = chain(t);
    recs[i].bytes = bytes;
    let over = chain_link(
        t.as_str().as_bytes(),
        recs[i].seq,
        &recs[i - 1].link,
        &record_digest(&recs[i].bytes),
    );
    crate::anchors::relink(t, &mut recs[i + 1..], over);
    recs
}

fn broken(first: u64, last: u64) -> Vec<BrokenRange> {
    vec![BrokenRange {
        first,
        last,
        verdict: Verdict::Tampered,
    }]
}

#[test]
fn a_record_whose_header_names_another_position_or_tenant_is_tampered_even_relinked() {
    let t = tenant("acme");
    let other = tenant("other");
    assert_eq!(
        walk(&t, &chain(&t)),
        (Verdict::UnanchoredTail, Some(0), vec![])
    );
    // Record 4 replaced by one whose header says seq 5, then by another
    // tenant's record 4; every stored link recomputed around it, so only the
    // header shows the swap.
    for bytes in [
        encode_record(5, &event(&t, 4)).unwrap(),
        encode_record(4, &event(&other, 4)).unwrap(),
    ] {
        let mut recs = chain(&t);
        recs[4].bytes = bytes;
        crate::anchors::relink(&t, &mut recs, Link::GENESIS);
        assert_eq!(walk(&t, &recs), (Verdict::Tampered, Some(4), broken(4, 4)));
    }
}

#[test]
fn a_forged_header_gives_no_candidate_link_so_the_record_chained_on_it_is_named_too() {
    let t = tenant("acme");
    // Record 4's header says seq 5; its stored link is left alone, and the
    // links from record 5 on are recomputed over the forged record 4. A
    // record that cannot stand at position 4 yields no candidate link for
    // the walk to resynchronise on, so record 5 (chained onto it) is broken
    // too, and the walk resumes at record 6 from record 5's stored link.
    let recs = replaced_then_relinked_after(&t, 4, encode_record(5, &event(&t, 4)).unwrap());
    assert_eq!(walk(&t, &recs), (Verdict::Tampered, Some(4), broken(4, 5)));
    // The same edit with a valid header (content changed, header kept) is a
    // candidate: the walk resynchronises on the recomputed link and names
    // record 4 alone.
    let recs = replaced_then_relinked_after(&t, 4, encode_record(4, &event(&t, 400)).unwrap());
    assert_eq!(walk(&t, &recs), (Verdict::Tampered, Some(4), broken(4, 4)));
}

#[test]
fn a_checkpoint_whose_merkle_root_is_not_the_records_root_is_tampered_though_its_head_matches() {
    use hisn_audit_log::merkle::{leaf_hash, root};
    use hisn_audit_log::{Checkpoint, Timestamp};
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    let recs = chain(&t);
    let leaves: Vec<_> = recs
        .iter()
        .map(|r| leaf_hash(&record_digest(&r.bytes)))
        .collect();
    let head = recs[N as usize - 1].link;
    let signed =
        |r| k.sign(Checkpoint::new(&t, N, head, Timestamp::from_unix_micros(1)).with_root(r));
    let verdict = |cp| {
        let cps = [cp];
        let r = Verifier::new(&t, &cps, Some(&keys))
            .verify_log(Start::Genesis, recs.iter().map(Ok))
            .unwrap();
        (r.verdict, r.seq, r.anchored_size)
    };
    assert_eq!(verdict(signed(root(&leaves))), (Verdict::Intact, None, N));
    // The root of the first N - 1 records: signed, right size, right head.
    assert_eq!(
        verdict(signed(root(&leaves[..N as usize - 1]))),
        (Verdict::Tampered, Some(0), 0)
    );
}

#[test]
fn a_cut_log_names_exactly_the_records_the_newest_checkpoint_holds_and_the_log_lost() {
    use hisn_audit_log::{Checkpoint, Timestamp};
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    let recs = chain(&t);
    let cps = [
        k.sign(Checkpoint::new(
            &t,
            6,
            recs[5].link,
            Timestamp::from_unix_micros(1),
        )),
        k.sign(Checkpoint::new(
            &t,
            N,
            recs[N as usize - 1].link,
            Timestamp::from_unix_micros(2),
        )),
    ];
    // Records 7..N cut: 7, 8 and 9 are missing.
    let r = Verifier::new(&t, &cps, Some(&keys))
        .verify_log(Start::Genesis, recs[..7].iter().map(Ok))
        .unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.size, r.anchored_size),
        (Verdict::Truncated, Some(7), 7, 6)
    );
    assert_eq!(
        r.breaks,
        [BrokenRange {
            first: 7,
            last: N - 1,
            verdict: Verdict::Truncated,
        }]
    );
}

#[test]
fn a_pruned_start_is_explained_only_by_a_prune_record_naming_both_its_last_seq_and_link() {
    use hisn_audit_log::{Event, PRUNE_ACTION};
    let t = tenant("acme");
    let all = chain(&t);
    // Records 0..=3 pruned: the log starts at 4 after record 3's link.
    let boundary = all[3].link;
    let walk_pruned = |through: u64, link: Link| {
        let prune = Event::builder(&t, "ops", PRUNE_ACTION)
            .entity("audit_log", t.as_str())
            .diff(&serde_json::json!({
                "from": 0,
                "through": through,
                "count": through + 1,
                "boundary_link": link.to_hex(),
            }))
            .danger_build_reserved(&clock())
            .unwrap();
        let mut recs = all[4..].to_vec();
        recs.push(StoredRecord {
            seq: N,
            bytes: encode_record(N, &prune).unwrap(),
            link: Link::GENESIS,
        });
        crate::anchors::relink(&t, &mut recs, boundary);
        let r = Verifier::new(&t, &[], None)
            .verify_log(
                Start::Pruned {
                    seq: 4,
                    prev: boundary,
                },
                recs.iter().map(Ok),
            )
            .unwrap();
        (r.verdict, r.seq)
    };
    assert_eq!(walk_pruned(3, boundary), (Verdict::UnanchoredTail, Some(4)));
    // The right last seq with another link, the right link with another seq.
    assert_eq!(walk_pruned(3, all[2].link), (Verdict::Tampered, Some(4)));
    assert_eq!(walk_pruned(2, boundary), (Verdict::Tampered, Some(4)));
}
