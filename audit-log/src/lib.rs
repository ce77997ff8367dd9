#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod anchors;
mod chain;
mod checkpoint;
mod clock;
mod encoding;
mod error;
mod event;
mod fsread;
mod jcs;
pub mod merkle;
mod pseudonym;
pub mod store;
mod verify;

pub use anchors::{
    Anchors, VerifierState, has_chain, require_anchor, verify_store, verify_store_witnessed,
};
pub use chain::{Link, chain_link, record_digest};
#[doc(hidden)]
pub use checkpoint::parse_checkpoint_edges;
pub use checkpoint::{
    Checkpoint, CheckpointFault, CheckpointPolicy, CheckpointSink, Cosignature, CosigningKey,
    FileSink, MemorySink, NoteSignature, ORIGIN_PREFIX, SignedCheckpoint, SigningKey, StdoutSink,
    TrustedKeys, VerifyingKey, WitnessKey, WitnessPolicy, origin_for, parse_checkpoint_log,
    parse_checkpoint_text, parse_notes, read_checkpoint_log,
};
pub use clock::{Clock, FakeClock, SystemClock, Timestamp};
pub use encoding::{RECORD_VERSION, RecordHeader, decode_record, encode_record, peek_header};
pub use error::{Error, Result};
pub use event::{Event, EventBuilder, TenantId};
pub use pseudonym::Pseudonymizer;
pub use store::file::{
    AutoCheckpoint, Durability, FileStore, FileStoreOptions, IndexMismatch, TenantReader,
};
pub use store::memory::MemoryStore;
pub use store::{
    AuditRead, Bounds, EntryInclusion, EntryProof, Export, ExportReceipt, InclusionCheck,
    InclusionProof, ReportEntry, SubjectReport,
};
pub use verify::{BrokenRange, PRUNE_ACTION, Start, StoredRecord, Verdict, Verifier, VerifyReport};

/// Size limits on events and records. Inputs beyond them are refused with a
/// typed error, so one caller cannot make records (or the decoder's allocations)
/// unboundedly large.
pub mod limits {
    /// Longest tenant identifier, in bytes.
    pub const MAX_TENANT_LEN: usize = 64;
    /// Longest text field (actor, action, entity, state, subject, request id), in bytes.
    pub const MAX_FIELD_LEN: usize = 1024;
    /// Most subject keys per event.
    pub const MAX_SUBJECTS: usize = 64;
    /// Longest canonical diff, in bytes.
    pub const MAX_DIFF_LEN: usize = 256 * 1024;
    /// Longest encoded record, in bytes.
    pub const MAX_RECORD_LEN: usize = 1024 * 1024;
    /// Longest checkpoint log (`checkpoints.jsonl`, a [`FileSink`](crate::FileSink)'s
    /// file) a reader reads, in bytes: a longer one is refused with
    /// [`Error::Corrupt`](crate::Error::Corrupt), never read into memory
    /// (about half a million checkpoints with their kept Merkle edges).
    pub const MAX_CHECKPOINT_LOG_LEN: usize = 1 << 30;
}
