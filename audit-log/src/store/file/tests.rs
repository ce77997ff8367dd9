//! Unit tests of the file store (writer failures, rolls, automatic checkpoints).

use std::sync::atomic::AtomicI32;

use super::*;
use crate::checkpoint::CheckpointPolicy;
use crate::clock::FakeClock;
use crate::verify::Verdict;

/// Fails the n-th write or sync (counting from 1) with the given errno.
#[derive(Debug)]
struct FailAt {
    writes: AtomicI32,
    syncs: AtomicI32,
    errno: i32,
}

impl IoHook for FailAt {
    fn before_write(&self) -> std::io::Result<()> {
        if self.writes.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(std::io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
    fn before_sync(&self) -> std::io::Result<()> {
        if self.syncs.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(std::io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

/// Fails every write of preallocated zeros (a disk too full for them).
#[derive(Debug)]
struct NoRoomAhead;

impl IoHook for NoRoomAhead {
    fn before_write(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn before_sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn before_preallocate(&self) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(28 /* ENOSPC */))
    }
}

/// Preallocation only speeds syncs up: when its zeros cannot be written,
/// appends are still acknowledged, the store is not poisoned and the
/// segment holds no zeros.
#[test]
fn a_failed_preallocation_never_fails_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(
        dir.path(),
        FileStoreOptions::default().hook(Arc::new(NoRoomAhead)),
    )
    .unwrap();
    for i in 0..20 {
        assert_eq!(store.append(event(i)).unwrap(), u64::from(i));
    }
    assert!(!store.is_poisoned());
    let t = TenantId::parse("acme").unwrap();
    let seg = dir.path().join(tenant_dir_name(&t)).join(segment_name(0));
    let bytes = std::fs::read(&seg).unwrap();
    let p = crate::store::segment::parse_segment(&bytes).unwrap();
    assert_eq!((p.frames.len(), p.end), (20, SegmentEnd::Clean));
    store.close().unwrap();
}

fn event(i: u32) -> Event {
    let t = TenantId::parse("acme").unwrap();
    Event::builder(&t, "u", "x.y")
        .subject(&format!("s{}", i % 3))
        .build(&FakeClock::default())
        .unwrap()
}

fn injected(syncs: i32, writes: i32, errno: i32) {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailAt {
        writes: AtomicI32::new(writes),
        syncs: AtomicI32::new(syncs),
        errno,
    });
    let store = FileStore::open(dir.path(), FileStoreOptions::default().hook(hook)).unwrap();
    let mut acked = Vec::new();
    let mut failed = false;
    for i in 0..20 {
        match store.append(event(i)) {
            Ok(seq) => {
                assert!(!failed, "nothing is acknowledged after the writer failed");
                acked.push(seq);
            }
            Err(Error::Io(e)) => {
                assert!(!failed);
                assert_eq!(e.raw_os_error(), Some(errno));
                failed = true;
            }
            Err(Error::Poisoned) => assert!(failed),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(failed && store.is_poisoned());
    drop(store);
    // Reopen: every acknowledged record is there and the chain continues.
    let store = FileStore::open(dir.path(), FileStoreOptions::default()).unwrap();
    let t = TenantId::parse("acme").unwrap();
    let size = store.bounds(&t).unwrap().size;
    assert!(size >= acked.len() as u64);
    let next = store.append(event(99)).unwrap();
    assert_eq!(next, size);
    let r = store.verify(&t, None, &[]).unwrap();
    assert_eq!(r.verdict, Verdict::UnanchoredTail);
    assert_eq!(r.size, size + 1);
}

/// A thread blocked on its own slot (as in `append`), the slot, and the
/// writer's end of it.
fn waiting_caller() -> (std::thread::JoinHandle<Result<u64>>, Arc<Slot>, SlotTx) {
    let (tx_slot, rx_slot) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let slot = Slot::for_this_thread();
        tx_slot.send(Arc::clone(&slot)).unwrap();
        slot.wait()
    });
    let slot = rx_slot.recv().unwrap();
    let tx = SlotTx {
        slot: Arc::clone(&slot),
        filled: false,
    };
    (waiter, slot, tx)
}

/// A slot the writer drops without answering (a writer that went away)
/// answers `Closed` and wakes its caller, so `append` never hangs.
#[test]
fn dropped_slot_answers_closed() {
    let (waiter, slot, tx) = waiting_caller();
    drop(tx);
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
    // A filled slot keeps its answer.
    let mut tx = SlotTx {
        slot: Arc::clone(&slot),
        filled: false,
    };
    tx.fill(Ok(7));
    drop(tx);
    assert!(matches!(slot.result.lock().take(), Some(Ok(7))));
}

/// A waiting caller woken by anyone else (a spurious or foreign unpark)
/// keeps waiting until its own slot is filled, then returns that answer.
#[test]
fn a_caller_woken_early_waits_for_its_own_answer() {
    let (waiter, slot, mut tx) = waiting_caller();
    for _ in 0..20 {
        slot.thread.unpark();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(!waiter.is_finished(), "returned without an answer");
    tx.fill(Ok(3));
    assert!(matches!(waiter.join().unwrap(), Ok(3)));
}

#[test]
fn eio_on_fdatasync_poisons_the_writer() {
    // Syncs: 1 = store dir, 2 = segment, 3 = tenant dir; fail a later data sync.
    injected(6, i32::MAX, 5 /* EIO */);
}

#[test]
fn enospc_on_write_poisons_the_writer() {
    injected(i32::MAX, 8, 28 /* ENOSPC */);
}

#[test]
fn segments_roll_and_reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId::parse("acme").unwrap();
    let opts = || {
        FileStoreOptions::default()
            .durability(Durability::OsBuffered)
            .max_segment_bytes(4096)
    };
    let store = FileStore::open(dir.path(), opts()).unwrap();
    for i in 0..200 {
        assert_eq!(store.append(event(i)).unwrap(), u64::from(i));
    }
    assert!(store.segment_ends(&t).unwrap().len() > 3);
    assert!(matches!(
        FileStore::open(dir.path(), opts()),
        Err(Error::Locked)
    ));
    store.close().unwrap();
    let store = FileStore::open(dir.path(), opts()).unwrap();
    assert_eq!(store.append(event(0)).unwrap(), 200);
    assert_eq!(store.verify(&t, None, &[]).unwrap().size, 201);
    assert_eq!(store.subject_seqs(&t, "s1").unwrap().len(), 67);
}

#[test]
fn auto_checkpoints_by_count_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let t = TenantId::parse("acme").unwrap();
    let clock = Arc::new(FakeClock::new(Timestamp::from_unix_micros(1_000_000)));
    let key = SigningKey::from_bytes("k", &[1; 32]).unwrap();
    let trusted = crate::TrustedKeys::new().with(key.verifying_key());
    let sink = Arc::new(crate::MemorySink::new());
    let policy = CheckpointPolicy {
        every_records: std::num::NonZeroU64::new(10).unwrap(),
        every: Duration::from_secs(5),
    };
    let opts = FileStoreOptions::default()
        .clock(clock.clone())
        .auto_checkpoint(AutoCheckpoint::new(key, policy).sink(sink.clone()));
    let store = FileStore::open(dir.path(), opts).unwrap();
    for i in 0..25 {
        store.append(event(i)).unwrap();
    }
    let sizes: Vec<u64> = sink.published().iter().map(|c| c.checkpoint.size).collect();
    assert!(
        sizes.len() >= 2 && sizes.iter().all(|s| *s >= 10),
        "{sizes:?}"
    );
    assert_eq!(store.checkpoints(&t).unwrap().len(), sizes.len());
    clock.advance_micros(6_000_000);
    store.append(event(0)).unwrap();
    // The writer's tick or the append's batch made a time-based checkpoint.
    let last = sink.published().last().cloned().unwrap();
    assert!(
        last.checkpoint.size >= 25 && last.checkpoint.time == clock.now(),
        "{last:?}"
    );
    assert_eq!(
        store.verify(&t, Some(&trusted), &[]).unwrap().verdict,
        Verdict::Intact
    );
}

/// A read racing the writer (a page of preallocated zeros copied before a
/// batch landed there, later pages after the next batch landed) parses as
/// damage; the live read rereads and returns the settled bytes. Damage two
/// reads agree on is returned as it is, and reads that never agree end in
/// the last one (fail closed).
#[test]
fn a_read_racing_the_writer_is_reread_and_real_damage_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), FileStoreOptions::default()).unwrap();
    let t = TenantId::parse("acme").unwrap();
    store.append(event(0)).unwrap();
    store.append(event(1)).unwrap();
    store.append(event(2)).unwrap();
    let seg = dir.path().join(tenant_dir_name(&t)).join(segment_name(0));
    let after = std::fs::read(&seg).unwrap();
    // The torn view: record 1's batch still zeros (its page copied before
    // it landed), record 2's batch, which vouches for it, already there.
    let p = crate::store::segment::parse_segment(&after).unwrap();
    let (off, end) = (
        usize::try_from(p.frames[1].offset).unwrap(),
        usize::try_from(p.frames[2].offset).unwrap(),
    );
    let mut torn = after.clone();
    torn[off..end].fill(0);
    assert!(matches!(
        crate::store::segment::parse_segment(&torn).unwrap().end,
        SegmentEnd::Corrupt { .. }
    ));
    let mut reads = vec![after.clone(), torn.clone()];
    let got = settled_read(|| Ok(reads.pop().unwrap()), 0).unwrap();
    assert_eq!(got, after);
    // Damage both reads agree on stays.
    let got = settled_read(|| Ok(torn.clone()), 0).unwrap();
    assert_eq!(got, torn);
    // Reads that never agree: the last one, damage and all.
    let mut n = 0u8;
    let got = settled_read(
        || {
            n += 1;
            let mut b = torn.clone();
            b[off] = n;
            Ok(b)
        },
        0,
    )
    .unwrap();
    assert_eq!(usize::from(n), LIVE_REREADS + 1);
    assert_eq!(got[off], n);
    store.close().unwrap();
}
