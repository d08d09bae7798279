//! Files on Windows.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::io::AsRawHandle as _;
use std::path::Path;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle,
};

/// What tells one file from another, whatever its name: the volume's serial number and the
/// file's index on it (what an inode is on Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    volume: u32,
    index: u64,
}

/// The identity of an open file.
pub fn identity(file: &File) -> io::Result<FileId> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is the file's, valid for the call; `info` is written by the call.
    let done = unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &mut info) };
    if done == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileId {
        volume: info.dwVolumeSerialNumber,
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    })
}

/// The identity of the file at `path` now. std opens it sharing reads, writes and deletes, so
/// this never stands in the way of another writer or of a rotation.
pub fn identity_at(path: &Path) -> io::Result<FileId> {
    identity(&File::open(path)?)
}

/// Windows has no mode bits: a new file takes the access list of its folder, which in a user's
/// profile is the user's own (and the administrators'). The docs say so; nothing to set here.
pub fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// Whether `path` is a file (Windows decides what runs by extension, through `PATHEXT`).
pub fn is_executable(path: &Path) -> bool {
    path.is_file()
}
