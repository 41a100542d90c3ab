//! The shard's cache of sealed segments' descriptors: a sealed segment is only read, so its file
//! need not stay open for the segment's life. Its descriptor waits here, least recently used
//! first out, and is opened again on its next use; at most `max_open_segment_files` of them per
//! shard, so the descriptors a broker holds are bounded by its partitions (each active segment
//! keeps its own), this cap and its connections, not by how many segments the logs hold
//! (issue 14, item 10). Shard-local (a thread-local), lives as long as the shard's thread.

use glommio::io::DmaFile;
use lru::LruCache;
use std::cell::{Cell, RefCell};
use std::num::NonZeroUsize;
use std::rc::Rc;

/// `set_max_open_segment_files` when never called.
pub const MAX_OPEN_SEGMENT_FILES_DEFAULT: usize = 1024;

thread_local! {
    static DESCRIPTORS: SegmentDescriptors = SegmentDescriptors::new(MAX_OPEN_SEGMENT_FILES_DEFAULT);
}

/// Caps the sealed segment files this thread (a shard) keeps open, at least 1; past it the least
/// recently used one is closed (an operation in flight on it keeps it open until it completes).
pub fn set_max_open_segment_files(max_files: usize) {
    let cap = NonZeroUsize::new(max_files).unwrap_or(NonZeroUsize::MIN);
    DESCRIPTORS.with(|d| d.files.borrow_mut().resize(cap));
}

/// Sealed segment files this thread keeps open now.
pub fn open_segment_files() -> usize {
    DESCRIPTORS.with(|d| d.files.borrow().len())
}

/// Sealed segments' open files, by segment file id, least recently used first out.
struct SegmentDescriptors {
    files: RefCell<LruCache<u64, Rc<DmaFile>>>,
    next_id: Cell<u64>,
}

impl SegmentDescriptors {
    fn new(max_files: usize) -> SegmentDescriptors {
        let cap = NonZeroUsize::new(max_files).unwrap_or(NonZeroUsize::MIN);
        SegmentDescriptors {
            files: RefCell::new(LruCache::new(cap)),
            next_id: Cell::new(0),
        }
    }
}

/// A new id for a segment file opened on this shard (the key of its cached descriptor).
pub(crate) fn next_file_id() -> u64 {
    DESCRIPTORS.with(|d| {
        let id = d.next_id.get();
        d.next_id.set(id + 1);
        id
    })
}

/// The cached file of segment file `id`, now the most recently used.
pub(crate) fn get(id: u64) -> Option<Rc<DmaFile>> {
    DESCRIPTORS.with(|d| d.files.borrow_mut().get(&id).cloned())
}

/// Keeps the file of sealed segment file `id`, closing the least recently used one if full.
pub(crate) fn put(id: u64, file: Rc<DmaFile>) {
    let evicted = DESCRIPTORS.with(|d| d.files.borrow_mut().push(id, file));
    // Dropped outside the borrow: the last reference closes the descriptor.
    drop(evicted);
}

/// Closes every cached descriptor (reads in flight keep theirs until they complete): the ones
/// this shard can give back when the process runs out of descriptors. Returns how many.
pub(crate) fn shed() -> usize {
    let files: Vec<_> = DESCRIPTORS.with(|d| {
        let mut files = d.files.borrow_mut();
        std::iter::from_fn(|| files.pop_lru()).collect()
    });
    // Dropped outside the borrow, as in `put`.
    files.len()
}

/// Takes the file of segment file `id` out of the cache (it becomes active again, or is gone).
pub(crate) fn take(id: u64) -> Option<Rc<DmaFile>> {
    // A segment dropped while the thread ends finds the cache gone: nothing to take then.
    DESCRIPTORS
        .try_with(|d| d.files.borrow_mut().pop(&id))
        .ok()
        .flatten()
}
