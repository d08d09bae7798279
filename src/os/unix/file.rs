//! Files on Linux and macOS.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// What tells one file from another, whatever its name: the device and the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    device: u64,
    inode: u64,
}

/// The identity of an open file.
pub fn identity(file: &File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok(FileId {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

/// The identity of the file at `path` now.
pub fn identity_at(path: &Path) -> io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    Ok(FileId {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

/// Makes a file that `options` creates readable and writable by its owner only.
pub fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(0o600)
}

/// Whether `path` is a file this user may run.
pub fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
