//! Changing files in a directory that whoever can write the store controls.
//!
//! A check on a path followed by a use of the same path can be raced: between
//! them, someone able to write the store can put a link (to a file outside
//! it), a FIFO (an open for writing blocks for ever) or another directory at
//! that name. So the writes of operator repair and crash recovery go through
//! file descriptors: a directory is opened once, without following a link,
//! and every later step names entries relative to it (`openat`, `renameat`);
//! a file is opened without following a link or blocking, checked to be a
//! regular file *once open*, and read, cut and synced through that one
//! descriptor. What a name points to after the check no longer matters.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

/// Never follow a link at the last component, never block on a FIFO.
fn flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "not a regular file (a link, a FIFO, a device or a directory)",
    )
}

/// Open the directory at `path` (not a link to one).
pub(super) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | flags(),
        Mode::empty(),
    )?)
}

/// Open the directory `name` in `dir` (not a link to one).
pub(super) fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | flags(),
        Mode::empty(),
    )?)
}

/// Create the directory `name` in `dir` if it is not there (whatever is
/// there is left as it is: [`open_dir_at`] then tells).
pub(super) fn ensure_dir_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A regular file, checked once open.
fn regular(fd: OwnedFd) -> io::Result<File> {
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(not_regular());
    }
    Ok(File::from(fd))
}

/// Open the regular file at `path` (not a link, FIFO or device) for reading
/// and, with `write`, writing.
pub(super) fn open_file(path: &Path, write: bool) -> io::Result<File> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    regular(rustix::fs::open(path, access | flags(), Mode::empty())?)
}

/// Open the regular file `name` in `dir` for reading and, with `write`,
/// writing.
pub(super) fn open_file_at(dir: &OwnedFd, name: &str, write: bool) -> io::Result<File> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    regular(rustix::fs::openat(
        dir,
        name,
        access | flags(),
        Mode::empty(),
    )?)
}

/// Create `name` in `dir`; fails if anything (a link included) is there.
pub(super) fn create_new_at(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | flags(),
        Mode::from_raw_mode(0o644),
    )?;
    Ok(File::from(fd))
}

/// Whether anything (a dangling link included) is at `name` in `dir`.
pub(super) fn exists_at(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Whether `name` in `dir` is the file `f` is open on (not followed).
pub(super) fn is_same_file(f: &File, dir: &OwnedFd, name: &str) -> io::Result<bool> {
    let a = rustix::fs::fstat(f)?;
    let b = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

/// Move `from` in `from_dir` to `to` in `to_dir`, never replacing what is
/// at `to` (a link there is not followed: the entry itself moves).
pub(super) fn move_at(
    from_dir: &OwnedFd,
    from: &str,
    to_dir: &OwnedFd,
    to: &str,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        RenameFlags::NOREPLACE,
    )?)
}

/// Swap the entries `a` and `b` of `dir` atomically.
pub(super) fn exchange_at(dir: &OwnedFd, a: &str, b: &str) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        dir,
        a,
        dir,
        b,
        RenameFlags::EXCHANGE,
    )?)
}

/// `fsync` the directory at `path` (which may be a link to one: the store's
/// own directory can be; a FIFO or file there is refused, never waited on).
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    sync(fd)
}

/// `fsync` a directory (or file) descriptor.
pub(super) fn sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}
