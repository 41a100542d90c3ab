//! Idempotent-producer state of one partition (sans-io): for each producer id its epoch and the
//! last five batches it wrote, so that a retried batch is answered as a duplicate instead of being
//! appended twice, and a gap in sequences is refused.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Why a producer's batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("idempotent batch without a base sequence")]
    MissingSequence,
    #[error("producer epoch {epoch} is older than the current epoch {current}")]
    FencedEpoch { epoch: i16, current: i16 },
    #[error("base sequence {got} is out of order, expected {expected}")]
    OutOfOrder { got: i32, expected: i32 },
}

/// Kafka keeps the last five batches per producer (max.in.flight.requests.per.connection ≤ 5).
pub const BATCHES_REMEMBERED: usize = 5;

/// One batch a producer wrote: its sequence range and, once appended, its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    /// -1 while the append is in flight.
    pub base_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// The largest timestamp of the producer's last appended batch (-1: none known, as in a
    /// snapshot written before this field existed).
    #[serde(default = "no_timestamp")]
    pub last_timestamp_ms: i64,
}

fn no_timestamp() -> i64 {
    -1
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp_ms: no_timestamp(),
        }
    }
}

/// One producer with state in a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its last batch, -1 when none is remembered.
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// Already written: answer success with this base offset (-1 if still in flight).
    Duplicate { base_offset: i64 },
}

/// Sequence numbers wrap at i32::MAX back to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Producer state of one partition. Shard-local: owned by the partition, lives as long as it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// Checks a batch of a producer and, when it is to be appended, records it as in flight.
    /// `producer_id < 0` means a non-idempotent producer.
    pub fn admit(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_offset_delta: i32,
    ) -> Result<Admission, SequenceError> {
        if producer_id < 0 {
            return Ok(Admission::Append);
        }
        if first_seq < 0 {
            return Err(SequenceError::MissingSequence);
        }
        let last_seq = first_seq.wrapping_add(last_offset_delta.max(0)) & i32::MAX;
        let entry = self.producers.entry(producer_id).or_default();
        if entry.batches.is_empty() {
            // Unknown producer (new, or its state expired with the log): accept any sequence,
            // as Kafka does since KIP-360.
            entry.epoch = epoch;
        } else if epoch < entry.epoch {
            return Err(SequenceError::FencedEpoch {
                epoch,
                current: entry.epoch,
            });
        } else if epoch > entry.epoch {
            // A bumped epoch restarts sequences at 0.
            if first_seq != 0 {
                return Err(SequenceError::OutOfOrder {
                    got: first_seq,
                    expected: 0,
                });
            }
            entry.epoch = epoch;
            entry.batches.clear();
        } else {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(Admission::Duplicate {
                    base_offset: dup.base_offset,
                });
            }
            let expected = next_seq(entry.batches.back().map_or(-1, |b| b.last_seq));
            if first_seq != expected {
                return Err(SequenceError::OutOfOrder {
                    got: first_seq,
                    expected,
                });
            }
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq,
            last_seq,
            base_offset: -1,
        });
        Ok(Admission::Append)
    }

    /// Records the base offset an admitted batch was appended at, and its largest timestamp.
    pub fn appended(
        &mut self,
        producer_id: i64,
        first_seq: i32,
        base_offset: i64,
        max_timestamp_ms: i64,
    ) {
        let Some(entry) = self.producers.get_mut(&producer_id) else {
            return;
        };
        if let Some(b) = entry
            .batches
            .iter_mut()
            .rev()
            .find(|b| b.first_seq == first_seq)
        {
            b.base_offset = base_offset;
            entry.last_timestamp_ms = max_timestamp_ms;
        }
    }

    /// The append of an admitted batch failed: forget it so that the retry is not a duplicate.
    pub fn failed(&mut self, producer_id: i64, first_seq: i32) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            e.batches
                .retain(|b| b.first_seq != first_seq || b.base_offset >= 0);
        }
    }

    /// Forgets an appended batch whose durability failed (its fdatasync reported an error, so what
    /// the log holds of it is unknown): a retry is appended again instead of being answered as a
    /// duplicate of a batch that may be lost.
    pub fn not_durable(&mut self, producer_id: i64, first_seq: i32) {
        if let Some(e) = self.producers.get_mut(&producer_id) {
            e.batches.retain(|b| b.first_seq != first_seq);
        }
    }

    /// Rebuilds state from a stored batch (recovery scan); later batches overwrite earlier ones.
    pub fn replay(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_offset_delta: i32,
        base_offset: i64,
        max_timestamp_ms: i64,
    ) {
        if producer_id < 0 || first_seq < 0 {
            return;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if epoch > entry.epoch {
            entry.batches.clear();
        }
        entry.epoch = epoch;
        entry.last_timestamp_ms = max_timestamp_ms;
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq,
            last_seq: first_seq.wrapping_add(last_offset_delta.max(0)) & i32::MAX,
            base_offset,
        });
    }

    /// Every producer with state in this partition, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: e.last_timestamp_ms,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Producers with state in this partition.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_sequence_batches_are_appended_and_retries_are_duplicates() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.admit(7, 0, 0, 9), Ok(Admission::Append));
        t.appended(7, 0, 100, 1_000);
        assert_eq!(t.admit(7, 0, 10, 4), Ok(Admission::Append));
        t.appended(7, 10, 110, 1_000);
        assert_eq!(
            t.admit(7, 0, 0, 9),
            Ok(Admission::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            t.admit(7, 0, 10, 4),
            Ok(Admission::Duplicate { base_offset: 110 })
        );
    }

    #[test]
    fn a_gap_in_sequences_is_out_of_order() {
        let mut t = ProducerStateTable::default();
        t.admit(7, 0, 0, 0).unwrap();
        assert_eq!(
            t.admit(7, 0, 5, 0),
            Err(SequenceError::OutOfOrder {
                got: 5,
                expected: 1
            })
        );
        assert_eq!(t.admit(7, 0, 1, 0), Ok(Admission::Append));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_restarts_at_zero() {
        let mut t = ProducerStateTable::default();
        t.admit(7, 3, 0, 0).unwrap();
        assert_eq!(
            t.admit(7, 2, 1, 0),
            Err(SequenceError::FencedEpoch {
                epoch: 2,
                current: 3
            })
        );
        assert_eq!(
            t.admit(7, 4, 5, 0),
            Err(SequenceError::OutOfOrder {
                got: 5,
                expected: 0
            })
        );
        assert_eq!(t.admit(7, 4, 0, 0), Ok(Admission::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut t = ProducerStateTable::default();
        for i in 0..7 {
            assert_eq!(t.admit(1, 0, i, 0), Ok(Admission::Append));
            t.appended(1, i, i64::from(i), 1_000);
        }
        assert_eq!(
            t.admit(1, 0, 6, 0),
            Ok(Admission::Duplicate { base_offset: 6 })
        );
        // batch 0 fell out of the window: it is neither a duplicate nor the next in sequence
        assert_eq!(
            t.admit(1, 0, 0, 0),
            Err(SequenceError::OutOfOrder {
                got: 0,
                expected: 7
            })
        );
    }

    #[test]
    fn a_failed_append_can_be_retried() {
        let mut t = ProducerStateTable::default();
        t.admit(1, 0, 0, 0).unwrap();
        t.failed(1, 0);
        assert_eq!(t.admit(1, 0, 0, 0), Ok(Admission::Append));
    }

    #[test]
    fn replay_restores_duplicate_detection() {
        let mut t = ProducerStateTable::default();
        t.replay(9, 1, 0, 4, 50, 1_000);
        t.replay(9, 1, 5, 4, 55, 1_000);
        assert_eq!(
            t.admit(9, 1, 5, 4),
            Ok(Admission::Duplicate { base_offset: 55 })
        );
        assert_eq!(t.admit(9, 1, 10, 0), Ok(Admission::Append));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_batch_that_did_not_become_durable_is_appended_again_on_retry() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.admit(9, 0, 0, 1), Ok(Admission::Append));
        t.appended(9, 0, 40, 1_000);
        t.not_durable(9, 0);
        assert_eq!(t.admit(9, 0, 0, 1), Ok(Admission::Append));
    }

    #[test]
    fn active_producers_report_their_last_sequence_and_timestamp() {
        let mut t = ProducerStateTable::default();
        t.admit(7, 2, 0, 9).unwrap();
        t.appended(7, 0, 100, 5_000);
        t.admit(7, 2, 10, 4).unwrap();
        t.appended(7, 10, 110, 6_000);
        t.replay(3, 0, 0, 0, 0, 4_000);
        // Admitted, not yet appended: no sequence written, no timestamp known.
        t.admit(9, 0, 0, 0).unwrap();
        let active = t.active();
        let row = |producer_id, epoch, last_sequence, last_timestamp_ms| ActiveProducer {
            producer_id,
            epoch,
            last_sequence,
            last_timestamp_ms,
        };
        assert_eq!(
            active,
            vec![row(3, 0, 0, 4_000), row(7, 2, 14, 6_000), row(9, 0, 0, -1)]
        );
    }

    #[test]
    fn a_snapshot_without_timestamps_loads_them_as_unknown() {
        let json = r#"{"producers":{"5":{"epoch":1,"batches":[{"first_seq":0,"last_seq":3,"base_offset":0}]}}}"#;
        let t: ProducerStateTable = serde_json::from_str(json).unwrap();
        assert_eq!(t.active()[0].last_timestamp_ms, -1);
        assert_eq!(t.active()[0].last_sequence, 3);
    }
}
