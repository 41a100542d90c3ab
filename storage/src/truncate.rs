//! Kafka's truncateTo, and the reset to an empty log it falls back to. Both own the log
//! for their duration (maintenance): appends meanwhile are staged, and dropped if they lie
//! past the cut. Runs on the log's shard.

use crate::batch::BatchHeader;
use crate::clock::now_ms;
use crate::error::StorageError;
use crate::log::{Maintenance, PartitionLog};
use crate::recovery::{remove_files, write_start_checkpoint};
use crate::segment::{align_down, create_segment, segment_paths, walk_headers, SegFile};
use crate::spare::spare_path;
use std::path::PathBuf;
use std::rc::Rc;

/// What a truncation has to do, decided from the state alone.
enum Plan {
    /// Nothing at or past the offset, or only staged batches were (already dropped).
    Done,
    /// Nothing valid is left: the log restarts empty at the offset.
    Reset,
    /// Cut inside segment `idx`, whose batch holding the offset starts at or after `floor`.
    InSegment {
        idx: usize,
        file: Rc<SegFile>,
        floor: u64,
        size: u64,
    },
}

impl PartitionLog {
    /// Kafka's truncateTo: removes the batch containing `offset` and everything after;
    /// the new log end is that batch's base offset. At or below the log start the log is
    /// emptied and restarts at `offset`.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let guard = self.maintenance().await?;
        let placed_end = self.shared.state.borrow().placed_end_offset();
        self.flush_until(placed_end).await?;
        match self.plan_truncation(offset) {
            Plan::Done => {}
            Plan::Reset => self.reset_to(offset, &guard).await?,
            Plan::InSegment {
                idx,
                file,
                floor,
                size,
            } => {
                let (cut_pos, new_end) = find_cut(&file, floor, size, offset).await?;
                if new_end < self.log_start_offset() {
                    // The containing batch starts below the log start: nothing valid is left.
                    self.reset_to(offset, &guard).await?;
                } else {
                    self.cut_segment(idx, &file, cut_pos, new_end).await?;
                }
            }
        }
        guard.finish();
        Ok(())
    }

    /// Decides the truncation; cuts staged batches alone on the spot (nothing on disk
    /// changes then).
    fn plan_truncation(&self, offset: i64) -> Plan {
        let mut s = self.shared.state.borrow_mut();
        if offset >= s.offsets.log_end() {
            return Plan::Done;
        }
        let staged_cut = s
            .staged
            .headers()
            .find(|h| h.next_offset() > offset)
            .map(|h| h.base_offset)
            .filter(|_| offset >= s.placed_end_offset());
        // At or below the log start (or cutting a batch that starts below it).
        let full = offset <= s.offsets.log_start()
            || staged_cut.is_some_and(|cut| cut < s.offsets.log_start());
        if full {
            return Plan::Reset;
        }
        if let Some(cut) = staged_cut {
            s.drop_unplaced_from(cut);
            s.offsets.truncate(cut);
            drop(s);
            self.shared.durable.notify();
            return Plan::Done;
        }
        let idx = s.segment_for(offset);
        let seg = &s.segments[idx];
        Plan::InSegment {
            idx,
            file: seg.file.clone(),
            floor: seg.index.floor_position(offset),
            size: seg.size,
        }
    }

    /// Cuts segment `idx` at `cut_pos` (offset `new_end`), removes every later segment
    /// and makes the cut one active again.
    async fn cut_segment(
        &self,
        idx: usize,
        file: &Rc<SegFile>,
        cut_pos: u64,
        new_end: i64,
    ) -> Result<(), StorageError> {
        let (removed, kept_base) = {
            let mut s = self.shared.state.borrow_mut();
            let removed: Vec<i64> = s
                .segments
                .drain(idx + 1..)
                .map(|seg| seg.retire())
                .collect();
            let seg = s.segments.back_mut().expect("segment idx kept");
            seg.size = cut_pos;
            seg.durable_size = cut_pos;
            seg.next_offset = new_end;
            let kept_base = seg.base_offset;
            s.offsets.lower_durable(new_end);
            s.read_ahead = None;
            (removed, kept_base)
        };
        // The kept segment is active again: it keeps its descriptor, and its index files (if
        // sealed) are stale.
        file.unseal();
        let dir = &self.shared.dir;
        let mut paths: Vec<PathBuf> = removed
            .iter()
            .flat_map(|b| segment_paths(dir, *b))
            .collect();
        paths.extend(segment_paths(dir, kept_base).into_iter().skip(1));
        remove_files(dir, paths).await?;
        file.truncate(cut_pos).await?;
        file.sync().await?;
        self.reactivate_cut_segment(file, cut_pos, new_end).await
    }

    /// Rebuilds the cut segment's index past its last entry still valid, restarts the
    /// head at the cut and moves the log end there.
    async fn reactivate_cut_segment(
        &self,
        file: &Rc<SegFile>,
        cut_pos: u64,
        new_end: i64,
    ) -> Result<(), StorageError> {
        let rescan_from = {
            let mut s = self.shared.state.borrow_mut();
            s.segments.back_mut().expect("kept").index.truncate(new_end)
        };
        let mut rescanned: Vec<(u64, BatchHeader)> = Vec::new();
        walk_headers(file, rescan_from, cut_pos, |pos, h| {
            rescanned.push((pos, *h));
            true
        })
        .await?;
        let tail_pos = align_down(cut_pos);
        let tail_block = file.read(tail_pos, (cut_pos - tail_pos) as usize).await?;
        {
            let mut s = self.shared.state.borrow_mut();
            let seg = s.segments.back_mut().expect("kept");
            for (pos, h) in &rescanned {
                seg.index.on_batch(*pos, h);
            }
            s.write.restart(file.clone(), cut_pos, &tail_block);
            // Batches appended meanwhile were staged with offsets past the cut: gone too.
            s.drop_unplaced_from(new_end);
            s.offsets.truncate(new_end);
        }
        self.shared.appended.notify();
        self.shared.durable.notify();
        Ok(())
    }

    /// Drops every segment and restarts the log empty at `offset`.
    pub(crate) async fn reset_to(
        &self,
        offset: i64,
        _guard: &Maintenance<'_>,
    ) -> Result<(), StorageError> {
        let dir = &self.shared.dir;
        let (config, old) = {
            let mut s = self.shared.state.borrow_mut();
            let old: Vec<i64> = s.segments.iter().map(|seg| seg.retire()).collect();
            // The spare's old batches may hold offsets at or past `offset`: it goes too.
            s.spare = None;
            (s.config.clone(), old)
        };
        let mut paths: Vec<_> = old.iter().flat_map(|b| segment_paths(dir, *b)).collect();
        paths.push(spare_path(dir));
        remove_files(dir, paths).await?;
        write_start_checkpoint(dir, offset).await?;
        let (seg, _) = create_segment(dir, offset, &config, now_ms(), false).await?;
        let mut s = self.shared.state.borrow_mut();
        s.write.restart(seg.file.clone(), 0, &[]);
        s.segments.clear();
        s.segments.push_back(seg);
        s.offsets.reset(offset);
        s.staged.clear();
        s.cache.clear();
        s.read_ahead = None;
        drop(s);
        self.shared.appended.notify();
        self.shared.durable.notify();
        Ok(())
    }
}

/// The batch holding `offset` in a segment's bytes `[floor, size)`: its position and its
/// base offset (the new log end).
async fn find_cut(
    file: &SegFile,
    floor: u64,
    size: u64,
    offset: i64,
) -> Result<(u64, i64), StorageError> {
    let mut cut = None;
    walk_headers(file, floor, size, |pos, h| {
        if h.next_offset() > offset {
            cut = Some((pos, h.base_offset));
            false
        } else {
            true
        }
    })
    .await?;
    cut.ok_or_else(|| StorageError::CorruptSegment {
        path: file.path.clone(),
        position: size,
        reason: format!("offset {offset} not found in its segment"),
    })
}
