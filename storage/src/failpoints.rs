//! I/O error injection for the storage fault tests (issue 14, item 13), through tikv's `fail`
//! crate. Compiled in only with the `failpoints` feature, which no release build of the broker
//! enables; without it `inject` is an empty inline function.
//!
//! Points: `segment::write` (data and the zeros written ahead), `segment::read`,
//! `segment::fdatasync`, `device_flush::fdatasync` (the shard's flush shared by its logs),
//! `segment::open` (reopening a sealed segment's file),
//! `segment::create` (opening a segment's file to write: a new one at a roll, or at recovery) and `index::write` (a sealed segment's index
//! files). A point configured as `return(TEXT)` fails with EIO every operation on a file whose
//! path contains `TEXT` (a test names its own directory, so tests running beside it are not
//! touched); `return(TEXT|EMFILE)` fails with EMFILE instead, as when descriptors run out.

use std::io;
use std::path::Path;

/// EIO if point `name` is configured for `path`.
#[cfg(feature = "failpoints")]
pub(crate) fn inject(name: &'static str, path: &Path) -> io::Result<()> {
    let Some(Some(scope)) = fail::eval(name, |scope| scope) else {
        return Ok(());
    };
    let (scope, errno) = match scope.split_once('|') {
        Some((scope, "EMFILE")) => (scope, libc::EMFILE),
        _ => (scope.as_str(), libc::EIO),
    };
    if path.to_string_lossy().contains(scope) {
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn inject(_name: &'static str, _path: &Path) -> io::Result<()> {
    Ok(())
}
