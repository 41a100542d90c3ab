//! One device cache flush per shard round for every log whose writes were pure overwrites.
//!
//! A data write into blocks whose zeros (and the extents and file size behind them) an earlier
//! fdatasync made durable changes no metadata: once the write completed, it sits in the device's
//! volatile cache, and any cache flush the device receives afterwards makes it durable, whichever
//! file asked for that flush. So the logs of a shard that wrote only such blocks in a round do
//! not each need an fdatasync of their own file: one flush, started after all their writes
//! completed, covers every one of them, whatever the partition count.
//!
//! What carries the flush is an io_uring fdatasync of an unnamed file (O_TMPFILE) the shard makes
//! on the device and never writes, so the call costs the flush alone (where no such file can be
//! made, a requester's file). That relies on the file system sending a cache flush on every
//! fdatasync, also of a file with nothing to write, when its device has a volatile cache. ext4
//! and XFS do:
//! - ext4 (`ext4_sync_file`): with a journal, either the journal commit the call waits for
//!   sends the flush (`jbd2_trans_will_send_data_barrier`), or the call sends it itself
//!   (`needs_barrier`, then `blkdev_issue_flush`); without one, `ext4_fsync_nojournal` sets
//!   `needs_barrier` whenever barriers are on.
//! - XFS (`xfs_file_fsync`): a log force issues its own pre-flush, and when the call forced no
//!   log ("overwriting an already allocated file"), it sends `blkdev_issue_flush` itself.
//!
//! Other file systems (btrfs writes data out of place; tmpfs has no device) keep one fdatasync
//! per file: `device_of` returns None for them. Only files of one device share a flush.
//!
//! A flush that fails fails every flush of that device on this shard from then on: the device
//! may have dropped cached writes of logs that asked for a later flush, and a later flush that
//! succeeds says nothing about them. The logs that ask go offline, as after a failed fdatasync.

use crate::error::{Failure, StorageError};
use crate::event::Event;
use glommio::io::DmaFile;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// The device of `file` when its file system sends a cache flush on every fdatasync (ext4,
/// XFS) and its O_DIRECT writes go to the device, so its overwrites may share one flush; None
/// otherwise, or when it cannot be told.
pub(crate) fn device_of(file: &DmaFile) -> Option<u64> {
    let fd = file.as_raw_fd();
    // SAFETY: both structs are plain data the kernel fills; `fd` is open for the call.
    let (fs, st) = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatfs(fd, &mut fs) != 0 || libc::fstat(fd, &mut st) != 0 {
            return None;
        }
        (fs, st)
    };
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between targets
    let fs_type = fs.f_type as i64;
    let flushes = fs_type == XFS_SUPER_MAGIC
        || (fs_type == EXT4_SUPER_MAGIC && ext4_writes_direct(fd, st.st_dev));
    flushes.then_some(st.st_dev)
}

/// ext4 turns O_DIRECT writes into buffered ones for files whose data goes through the journal
/// (`data=journal`, or `chattr +j`) or is encrypted: those sit in the page cache until their
/// own fdatasync, so another file's flush does not cover them.
fn ext4_writes_direct(fd: i32, device: u64) -> bool {
    const JOURNAL_DATA_FL: libc::c_long = 0x0000_4000;
    const ENCRYPT_FL: libc::c_long = 0x0000_0800;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long into `flags`; `fd` is open for the call.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return false;
    }
    flags & (JOURNAL_DATA_FL | ENCRYPT_FL) == 0 && !data_journalled(device)
}

thread_local! {
    /// Per device: whether its ext4 mount journals data (read once from mountinfo).
    static DATA_JOURNALLED: RefCell<HashMap<u64, bool>> = RefCell::default();
}

fn data_journalled(device: u64) -> bool {
    DATA_JOURNALLED.with(|known| {
        *known.borrow_mut().entry(device).or_insert_with(|| {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            // Unknown (no mountinfo, no line for the device) counts as journalled: no sharing.
            mount_options(&mountinfo, device).is_none_or(|opts| opts.contains("data=journal"))
        })
    })
}

/// The super-block options of the mount of `device` in a mountinfo text: the fields after the
/// " - " separator are the type, the source and the options; the third field before it is
/// `major:minor`.
fn mount_options(mountinfo: &str, device: u64) -> Option<String> {
    let wanted = format!("{}:{}", libc::major(device), libc::minor(device));
    mountinfo.lines().find_map(|line| {
        let (mount, sb) = line.split_once(" - ")?;
        (mount.split(' ').nth(2)? == wanted).then(|| sb.split(' ').nth(2).unwrap_or("").into())
    })
}

/// The shard's group-committed cache flushes of one device. Flushes are numbered from 1 and run
/// one at a time; a request waits for the first flush whose fdatasync begins after it, so the
/// requests that arrive while one flush runs all share the next.
pub(crate) struct DeviceFlush {
    started: Cell<u64>,
    completed: Cell<u64>,
    running: Cell<bool>,
    /// The first requester's file since the last flush began: it carries the next flush when
    /// the device has no carrier of its own.
    next_file: RefCell<Option<(Rc<DmaFile>, PathBuf)>>,
    carrier: RefCell<Carrier>,
    failure: RefCell<Option<Failure>>,
    done: Event,
}

/// What a flush fdatasyncs. A requester's segment file may have metadata of its own to commit
/// (the extents its zeros-ahead just converted), and then every log sharing the flush would wait
/// for that journal commit; an unnamed file (O_TMPFILE) on the device, never written, has none,
/// so its fdatasync is the cache flush alone.
/// Its fdatasync is an io_uring op of the shard (run by the kernel's io-wq worker, as every
/// fsync): one flush runs at a time, so it needs none of the blocking pool's parallelism, and it
/// costs no wake-up of a pool thread and of the shard behind it.
enum Carrier {
    Untried,
    Own(Rc<DmaFile>, PathBuf),
    /// No unnamed file could be made here: each flush borrows a requester's file.
    Unavailable,
}

thread_local! {
    static DEVICES: RefCell<HashMap<u64, Rc<DeviceFlush>>> = RefCell::default();
}

impl DeviceFlush {
    /// The shard's flushes of `device`.
    pub fn of(device: u64) -> Rc<DeviceFlush> {
        DEVICES.with(|d| {
            d.borrow_mut()
                .entry(device)
                .or_insert_with(|| {
                    Rc::new(DeviceFlush {
                        started: Cell::new(0),
                        completed: Cell::new(0),
                        running: Cell::new(false),
                        next_file: RefCell::new(None),
                        carrier: RefCell::new(Carrier::Untried),
                        failure: RefCell::new(None),
                        done: Event::default(),
                    })
                })
                .clone()
        })
    }

    /// Shared device flushes this shard has started, over every device.
    pub fn shard_count() -> u64 {
        DEVICES.with(|d| d.borrow().values().map(|f| f.started.get()).sum())
    }

    /// Waits for a cache flush of the device that started after this call; `file` (on the
    /// device, open for the call) may carry it. Returns how long the call waited.
    pub async fn flush(
        self: &Rc<Self>,
        file: Rc<DmaFile>,
        path: &Path,
    ) -> Result<Duration, StorageError> {
        crate::failpoints::inject("segment::fdatasync", path)
            .map_err(|e| StorageError::io("fdatasync", path, e))?;
        let ticket = self.started.get() + 1;
        self.next_file
            .borrow_mut()
            .get_or_insert_with(|| (file, path.to_path_buf()));
        if !self.running.get() {
            self.start();
        }
        let started = std::time::Instant::now();
        loop {
            let done = self.done.listen();
            if let Some(f) = self.failure.borrow().as_ref() {
                return Err(f.to_error());
            }
            if self.completed.get() >= ticket {
                return Ok(started.elapsed());
            }
            done.await;
        }
    }

    /// Starts a flush task, which begins the flush when it first runs: a request made before
    /// that (by a log whose write completed in the same turn of the shard) still shares it.
    fn start(self: &Rc<Self>) {
        if self.next_file.borrow().is_none() {
            return;
        }
        self.running.set(true);
        let this = self.clone();
        glommio::spawn_local(async move {
            let number = this.started.get() + 1;
            this.started.set(number);
            let (file, path) = this.next_file.borrow_mut().take().expect("checked at start");
            if let Err(e) = this.flush_once(&file, &path).await {
                tracing::error!(error = %e, "device cache flush failed; logs that share it go offline");
                this.failure.borrow_mut().get_or_insert(Failure::from_error(&e));
            }
            this.completed.set(number);
            this.running.set(false);
            // Requests that came while this flush ran share the next one.
            this.start();
            this.done.notify();
        })
        .detach();
    }

    /// One fdatasync that flushes the device: of the carrier, made at the first flush in the
    /// requester's directory, else of the requester's `file`.
    async fn flush_once(&self, file: &Rc<DmaFile>, path: &Path) -> Result<(), StorageError> {
        crate::failpoints::inject("device_flush::fdatasync", path)
            .map_err(|e| StorageError::io("fdatasync", path, e))?;
        if matches!(*self.carrier.borrow(), Carrier::Untried) {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let made = glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .dma_open(&dir)
                .await;
            *self.carrier.borrow_mut() = match made {
                Ok(carrier) => Carrier::Own(Rc::new(carrier), dir),
                Err(e) => {
                    tracing::warn!(error = %e, "no unnamed file for device flushes; they borrow a segment file");
                    Carrier::Unavailable
                }
            };
        }
        let carrier = match &*self.carrier.borrow() {
            Carrier::Own(file, dir) => Some((file.clone(), dir.clone())),
            _ => None,
        };
        match carrier {
            Some((carrier, dir)) => carrier
                .fdatasync()
                .await
                .map_err(|e| StorageError::glommio("fdatasync", &dir, e)),
            None => crate::segment::fdatasync_on_pool(file, path).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::run;

    async fn open(path: &Path) -> Rc<DmaFile> {
        Rc::new(
            glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .dma_open(path)
                .await
                .unwrap(),
        )
    }

    /// A log file in `dir` and the shard's flushes of its device, or None where files do not
    /// share flushes (not ext4 or XFS).
    async fn log_and_its_flushes(dir: &Path) -> Option<(PathBuf, Rc<DmaFile>, Rc<DeviceFlush>)> {
        let path = dir.join("a.log");
        let file = open(&path).await;
        let device = device_of(&file)?;
        Some((path, file, DeviceFlush::of(device)))
    }

    #[test]
    fn data_journalled_mounts_are_found_by_device_number() {
        let mountinfo = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                         40 27 7:1 / /mnt/j rw - ext4 /dev/loop1 rw,data=journal\n";
        let dev = |major, minor| libc::makedev(major, minor);
        assert_eq!(mount_options(mountinfo, dev(254, 0)).unwrap(), "rw,discard");
        assert!(mount_options(mountinfo, dev(7, 1))
            .unwrap()
            .contains("data=journal"));
        assert_eq!(mount_options(mountinfo, dev(8, 0)), None);
    }

    /// An ext4 image loop-mounted with `options`, unmounted when dropped.
    struct LoopMount(PathBuf);

    impl LoopMount {
        fn new(dir: &Path, name: &str, options: &str) -> Option<LoopMount> {
            let image = dir.join(format!("{name}.img"));
            let mount_point = dir.join(name);
            std::fs::create_dir(&mount_point).ok()?;
            std::fs::File::create(&image).ok()?.set_len(64 << 20).ok()?;
            let ok = |c: &mut std::process::Command| c.status().is_ok_and(|s| s.success());
            let made = ok(std::process::Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&image));
            let mounted = made
                && ok(std::process::Command::new("mount")
                    .args(["-o", &format!("loop,{options}")])
                    .arg(&image)
                    .arg(&mount_point));
            mounted.then_some(LoopMount(mount_point))
        }
    }

    impl Drop for LoopMount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    #[test]
    fn ext4_with_journalled_data_keeps_one_fdatasync_per_file() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: a loop mount needs root");
            return;
        }
        run(|dir| async move {
            let (Some(ordered), Some(journalled)) = (
                LoopMount::new(&dir, "ordered", "data=ordered"),
                LoopMount::new(&dir, "journalled", "data=journal"),
            ) else {
                eprintln!("skipped: no mkfs.ext4 or loop device");
                return;
            };
            let ordered_file = open(&ordered.0.join("a.log")).await;
            let journalled_file = open(&journalled.0.join("a.log")).await;
            assert!(device_of(&ordered_file).is_some());
            assert_eq!(device_of(&journalled_file), None);
            for file in [ordered_file, journalled_file] {
                let file = Rc::try_unwrap(file).unwrap_or_else(|_| panic!("the only handle"));
                file.close().await.unwrap(); // before the unmount
            }
        });
    }

    #[test]
    fn requests_made_in_one_turn_share_one_flush_and_those_made_while_it_runs_the_next() {
        run(|dir| async move {
            let Some((path, file, flush)) = log_and_its_flushes(&dir).await else {
                return; // not ext4 or XFS: nothing shares a flush here
            };
            let before = flush.started.get();
            let request = || {
                let (flush, file, path) = (flush.clone(), file.clone(), path.clone());
                glommio::spawn_local(async move { flush.flush(file, &path).await })
            };
            // Sixteen requests of one turn: the flush task the first one starts runs after them.
            let turn: Vec<_> = (0..16).map(|_| request()).collect();
            while flush.started.get() == before {
                futures_lite::future::yield_now().await;
            }
            // Eight more while that flush runs: they share the next one.
            let later: Vec<_> = (0..8).map(|_| request()).collect();
            for t in turn.into_iter().chain(later) {
                t.await.unwrap();
            }
            assert_eq!(flush.started.get() - before, 2);
        });
    }

    #[test]
    fn flushes_are_carried_by_an_unnamed_file_of_their_own() {
        run(|dir| async move {
            let Some((path, file, flush)) = log_and_its_flushes(&dir).await else {
                return; // not ext4 or XFS: nothing shares a flush here
            };
            flush.flush(file.clone(), &path).await.unwrap();
            let carrier = match &*flush.carrier.borrow() {
                Carrier::Own(carrier, _) => carrier.clone(),
                _ => panic!("no unnamed carrier file was made"),
            };
            assert_ne!(carrier.as_raw_fd(), file.as_raw_fd());
            let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            assert_eq!(names.len(), 1, "the carrier has no name: {names:?}");
            flush.flush(file, &path).await.unwrap();
            assert_eq!(flush.completed.get(), flush.started.get());
        });
    }

    #[test]
    fn a_request_never_takes_a_flush_that_started_before_it() {
        run(|dir| async move {
            let Some((path, file, flush)) = log_and_its_flushes(&dir).await else {
                return; // not ext4 or XFS: nothing shares a flush here
            };
            let first = glommio::spawn_local({
                let (flush, file, path) = (flush.clone(), file.clone(), path.clone());
                async move { flush.flush(file, &path).await }
            });
            while flush.started.get() == 0 {
                futures_lite::future::yield_now().await;
            }
            let begun = flush.started.get();
            flush.flush(file, &path).await.unwrap();
            assert!(flush.completed.get() > begun, "waited for a later flush");
            first.await.unwrap();
        });
    }
}
