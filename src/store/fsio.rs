//! The file-system calls every store file shares: a new file that never overwrites, a
//! directory fsync. Below the Maildir writer, `dovecot-keywords` and `subscriptions`, so
//! none of them imports another for these.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::{io_err, StoreError};
use super::owner::Apply;
use super::Ownership;

/// `O_CREAT|O_EXCL`: a name collision must fail, never overwrite another message. The file
/// gets `owner`'s owner and mode; if that fails it is removed again.
pub(super) fn open_new(path: &Path, owner: &Ownership) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(owner.file_mode)
        .open(path)?;
    if let Err(e) = owner.apply_file(&file) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// fsync on a directory makes its entries (a rename, a new sub-directory) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync dir", dir))
}
