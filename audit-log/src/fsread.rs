//! Opening and reading files that whoever can write the store controls.
//!
//! A file store's directory is untrusted input, and not only its bytes: at
//! any name a reader opens, someone able to write the store can put a FIFO
//! (opening it blocks until a writer appears, so `hisn audit verify` and the
//! application's own open hang for ever), a symbolic link to a device
//! (`/dev/zero` never ends, `/dev/random` neither) or a sparse file of
//! terabytes (read whole, it exhausts memory before anything is checked).
//! Every store file a reader opens goes through here: it is opened without
//! blocking, must be a regular file once open (a symbolic link is still
//! followed: what it points to is read as the untrusted input it is), and is
//! read only up to a bound that the store's own writer never exceeds.
//! Anything else is a typed [`Error::Corrupt`] naming the file, never a hang
//! or an allocation the size of the file.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::error::{Error, Result};

/// `O_NONBLOCK`: without it, opening a FIFO for reading blocks until some
/// process opens it for writing. `std` has no constant for it and the crate
/// takes no `libc` dependency for one flag, so the values are spelled out
/// for the platforms whose value is known; elsewhere the open is a plain one
/// and only the check after it (regular file) applies.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
))]
pub(crate) const O_NONBLOCK: i32 = 0o4000;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub(crate) const O_NONBLOCK: i32 = 0x0004;
#[cfg(not(any(
    all(
        any(target_os = "linux", target_os = "android"),
        not(any(
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "sparc",
            target_arch = "sparc64"
        ))
    ),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
pub(crate) const O_NONBLOCK: i32 = 0;

/// Largest file the small bookkeeping files of a store (`synced.mark`,
/// `prune.intent`) are read up to; the writer's are a few dozen bytes.
pub(crate) const MAX_SMALL_FILE: u64 = 64 << 10;

/// The name a store file is reported under: its directory and file name
/// (`t-<hex tenant>/<file>`), never a path outside the store.
fn name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path
        .parent()
        .and_then(Path::file_name)
        .map(|d| d.to_string_lossy())
    {
        Some(d) => format!("{d}/{file}"),
        None => file,
    }
}

fn not_regular(path: &Path) -> Error {
    Error::Corrupt {
        what: "store file is not a regular file (a FIFO, device or directory planted in the store?)",
        file: name(path),
        offset: 0,
    }
}

fn too_large(path: &Path, max: u64) -> Error {
    Error::Corrupt {
        what: "store file is larger than the store ever writes it",
        file: name(path),
        offset: max,
    }
}

/// Open a store file for reading: never blocks (a FIFO does not wait for a
/// writer) and refuses anything that is not a regular file once open.
///
/// # Errors
/// [`Error::Io`] (a missing file: `NotFound`); [`Error::Corrupt`] when it is
/// not a regular file.
pub(crate) fn open(path: &Path) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(not_regular(path));
    }
    Ok(f)
}

/// Read a whole store file of at most `max` bytes ([`open`], then
/// [`read_opened`]).
///
/// # Errors
/// As [`open`]; [`Error::Corrupt`] when the file is longer than `max`.
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>> {
    read_opened(open(path)?, path, max)
}

/// Read all of `f` (opened by [`open`] from `path`), which must be at most
/// `max` bytes long: the length is checked before reading and while reading,
/// so a file growing meanwhile is never read past `max`.
///
/// # Errors
/// [`Error::Io`]; [`Error::Corrupt`] when the file is longer than `max`.
pub(crate) fn read_opened(f: File, path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = f.metadata()?.len();
    if len > max {
        return Err(too_large(path, max));
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large(path, max));
    }
    Ok(out)
}

/// [`read`], with a missing file as `None`.
///
/// # Errors
/// As [`read`], except for a missing file.
pub(crate) fn read_if_exists(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    match read(path, max) {
        Ok(b) => Ok(Some(b)),
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking_and_a_long_file_is_never_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        // No writer ever opens it: a blocking open would hang this test.
        assert!(matches!(open(&fifo), Err(Error::Corrupt { .. })));
        assert!(matches!(read(dir.path(), 10), Err(Error::Corrupt { .. })));
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        assert!(matches!(
            read(&big, 1 << 20),
            Err(Error::Corrupt { offset, .. }) if offset == 1 << 20
        ));
        std::fs::write(&big, b"12345").unwrap();
        assert_eq!(read(&big, 5).unwrap(), b"12345");
        assert!(matches!(read(&big, 4), Err(Error::Corrupt { .. })));
        assert_eq!(read_if_exists(&dir.path().join("none"), 4).unwrap(), None);
    }
}
