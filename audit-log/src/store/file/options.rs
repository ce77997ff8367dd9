//! Options of the file store: durability, segment size, clock, automatic checkpoints.

use std::sync::Arc;

use crate::checkpoint::{CheckpointPolicy, CheckpointSink, SigningKey};
use crate::clock::{Clock, SystemClock};

/// When an append is acknowledged. See the [module docs](super).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// After `fdatasync` (default).
    #[default]
    Fsync,
    /// After `write(2)`; synced on segment roll and close.
    OsBuffered,
    /// After `write(2)`; never synced.
    None,
}

/// See [`FileStoreOptions::crash_hook`].
#[doc(hidden)]
pub type CrashHook = Arc<dyn Fn(&'static str) -> std::io::Result<()> + Send + Sync>;

/// An optional [`CrashHook`] (printable, for the `Debug` derives).
#[derive(Clone, Default)]
pub(super) struct StepHook(pub(super) Option<CrashHook>);

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StepHook(set)"
        } else {
            "StepHook(none)"
        })
    }
}

/// Test hook for injecting I/O failures into the writer.
pub(crate) trait IoHook: Send + Sync + std::fmt::Debug {
    fn before_write(&self) -> std::io::Result<()>;
    fn before_sync(&self) -> std::io::Result<()>;
    /// Before each write of preallocated zeros (not counted as a write).
    fn before_preallocate(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Automatic checkpoints made by the writer.
#[derive(Debug)]
pub struct AutoCheckpoint {
    pub(super) key: SigningKey,
    pub(super) policy: CheckpointPolicy,
    pub(super) sinks: Vec<Arc<dyn CheckpointSink>>,
}

impl AutoCheckpoint {
    /// Sign with `key` under `policy`; publish to every sink added with [`sink`](Self::sink).
    pub fn new(key: SigningKey, policy: CheckpointPolicy) -> Self {
        Self {
            key,
            policy,
            sinks: Vec::new(),
        }
    }

    /// Also publish to `sink`.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn CheckpointSink>) -> Self {
        self.sinks.push(sink);
        self
    }
}

/// Options for [`FileStore::open`](super::FileStore::open).
#[derive(Debug)]
pub struct FileStoreOptions {
    pub(super) durability: Durability,
    pub(super) max_segment_bytes: u64,
    pub(super) max_batch: usize,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) auto_checkpoint: Option<AutoCheckpoint>,
    pub(super) hook: Option<Arc<dyn IoHook>>,
    pub(super) crash_hook: StepHook,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            max_segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            max_batch: 4096,
            clock: Arc::new(SystemClock),
            auto_checkpoint: None,
            hook: None,
            crash_hook: StepHook::default(),
        }
    }
}

impl FileStoreOptions {
    /// Default segment size: 64 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// Smallest segment size accepted (smaller values are raised to it).
    pub const MIN_SEGMENT_BYTES: u64 = 4096;
    /// Largest segment size accepted (larger values are lowered to it): 1 GiB.
    /// Readers read a segment whole, so they refuse a segment file longer
    /// than this plus one record ([`Error::Corrupt`](crate::Error::Corrupt))
    /// rather than read a planted sparse file or device into memory.
    pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

    /// Set the durability mode.
    #[must_use]
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Roll to a new segment after about this many bytes (between
    /// [`MIN_SEGMENT_BYTES`](Self::MIN_SEGMENT_BYTES) and
    /// [`MAX_SEGMENT_BYTES`](Self::MAX_SEGMENT_BYTES)).
    #[must_use]
    pub fn max_segment_bytes(mut self, n: u64) -> Self {
        self.max_segment_bytes = n.clamp(Self::MIN_SEGMENT_BYTES, Self::MAX_SEGMENT_BYTES);
        self
    }

    /// The clock for checkpoint times and intervals.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Make checkpoints automatically.
    #[must_use]
    pub fn auto_checkpoint(mut self, a: AutoCheckpoint) -> Self {
        self.auto_checkpoint = Some(a);
        self
    }

    /// Crash tests only: `hook(step)` runs after each durable step of a
    /// multi-step operation (`prune.intent`, `prune.record`, `prune.delete`
    /// after each deleted segment, `prune.deleted`); an error stops the
    /// operation there, as a crash would.
    #[doc(hidden)]
    #[must_use]
    pub fn crash_hook(mut self, hook: CrashHook) -> Self {
        self.crash_hook = StepHook(Some(hook));
        self
    }

    #[cfg(test)]
    pub(crate) fn hook(mut self, h: Arc<dyn IoHook>) -> Self {
        self.hook = Some(h);
        self
    }
}
