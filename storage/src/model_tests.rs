//! Model-based property test: random operation sequences against the log and a plain
//! in-memory model of it; after every step the log must agree with the model.

use crate::batch::test_batch::make;
use crate::{LogConfig, PartitionLog, StorageError};
use bytes::Bytes;
use proptest::prelude::*;
use std::path::Path;
use std::rc::Rc;

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: i32,
        ts: i64,
        len: usize,
    },
    AppendDurable {
        records: i32,
        ts: i64,
        len: usize,
    },
    /// Several appends started together (group commit), then one flush.
    Burst {
        count: usize,
        len: usize,
    },
    Flush,
    Read {
        at: u8,
        max_bytes: usize,
    },
    Roll {
        now_ms: i64,
    },
    Retain {
        bytes: u64,
    },
    TruncateTo {
        at: u8,
    },
    DeleteRecordsBefore {
        at: u8,
    },
    OffsetForTimestamp {
        ts: i64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..4i32, 0..1000i64, 0..2500usize).prop_map(|(records, ts, len)| Op::Append { records, ts, len }),
        3 => (1..4i32, 0..1000i64, 0..2500usize).prop_map(|(records, ts, len)| Op::AppendDurable { records, ts, len }),
        1 => (2..12usize, 0..3000usize).prop_map(|(count, len)| Op::Burst { count, len }),
        2 => Just(Op::Flush),
        5 => (any::<u8>(), 1..20_000usize).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => (0..2000i64).prop_map(|now_ms| Op::Roll { now_ms }),
        1 => (8_000..60_000u64).prop_map(|bytes| Op::Retain { bytes }),
        1 => any::<u8>().prop_map(|at| Op::TruncateTo { at }),
        1 => any::<u8>().prop_map(|at| Op::DeleteRecordsBefore { at }),
        1 => (0..1100i64).prop_map(|ts| Op::OffsetForTimestamp { ts }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: every batch of the log as stored, plus the log start offset.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i64, i64, Vec<u8>)>, // base, next, max ts, stored bytes
    start: i64,
    end: i64,
}

impl Model {
    fn append(&mut self, b: &[u8], records: i32, ts: i64) -> i64 {
        let base = self.end;
        let mut v = b.to_vec();
        riffle_batch_header::LogOverhead::view_mut(&mut v)
            .expect("a whole batch")
            .base_offset
            .set(base);
        self.end = base + i64::from(records);
        self.batches.push((base, self.end, ts, v));
        base
    }
    /// Offset at fraction `at/255` of [start, end].
    fn pick(&self, at: u8) -> i64 {
        self.start + (self.end - self.start) * i64::from(at) / 255
    }
    fn first_live(&self) -> usize {
        self.batches.partition_point(|b| b.1 <= self.start)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        segment_ms: Some(500),
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 1024,
        tail_cache_bytes: 6 << 10,
        preallocate_bytes: 8 << 10,
        write_behind_depth: 4,
    }
}

fn producer_batch(records: i32, ts: i64, len: usize) -> Bytes {
    let payload: Vec<u8> = (0..len).map(|i| (i as i64 * 13 + ts) as u8).collect();
    Bytes::from(make(0, records, ts, &payload))
}

async fn check_read(
    log: &PartitionLog,
    m: &Model,
    from: i64,
    max_bytes: usize,
) -> Result<(), String> {
    let r = log.read(from, max_bytes).await;
    if from < m.start || from > m.end {
        return match r {
            Err(StorageError::OffsetOutOfRange { .. }) => Ok(()),
            other => Err(format!(
                "read({from}) outside [{}, {}]: {:?}",
                m.start,
                m.end,
                other.map(|r| r.bytes)
            )),
        };
    }
    let r = r.map_err(|e| format!("read({from}): {e}"))?;
    let got: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
    if got.len() != r.bytes {
        return Err("ReadResult.bytes disagrees with chunks".into());
    }
    if from == m.end {
        return if got.is_empty() {
            Ok(())
        } else {
            Err("read at end not empty".into())
        };
    }
    // A non-empty run of whole batches from the one containing `from`, within max_bytes
    // unless it is a single batch.
    let first = m.batches.partition_point(|b| b.1 <= from);
    let mut expect = Vec::new();
    let mut count = 0;
    for b in &m.batches[first..] {
        if expect.len() >= got.len() {
            break;
        }
        expect.extend_from_slice(&b.3);
        count += 1;
    }
    if got.is_empty() || expect != got {
        return Err(format!(
            "read({from}, {max_bytes}) returned {} bytes not matching the model",
            got.len()
        ));
    }
    if count > 1 && got.len() > max_bytes {
        return Err(format!(
            "read({from}, {max_bytes}) returned {} bytes",
            got.len()
        ));
    }
    Ok(())
}

async fn check_all(log: &PartitionLog, m: &Model) -> Result<(), String> {
    if (log.log_start_offset(), log.log_end_offset()) != (m.start, m.end) {
        return Err(format!(
            "offsets log [{}, {}) model [{}, {})",
            log.log_start_offset(),
            log.log_end_offset(),
            m.start,
            m.end
        ));
    }
    let mut at = m.start;
    while at < m.end {
        check_read(log, m, at, 5000).await?;
        let r = log.read(at, 5000).await.map_err(|e| e.to_string())?;
        let got: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut p = 0;
        while p < got.len() {
            let h = crate::batch::parse_checked(&got[p..]).map_err(|e| format!("{e:?}"))?;
            at = h.next_offset();
            p += h.size;
        }
    }
    Ok(())
}

async fn run_ops(dir: &Path, ops: Vec<Op>) -> Result<(), String> {
    let e = |x: StorageError| x.to_string();
    let mut log: Rc<PartitionLog> = PartitionLog::open(dir, config()).await.map_err(e)?;
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |s: String| format!("step {step} {op:?}: {s}");
        match &op {
            Op::Append { records, ts, len } | Op::AppendDurable { records, ts, len } => {
                let b = producer_batch(*records, *ts, *len);
                let info = if matches!(op, Op::Append { .. }) {
                    log.append(b.clone()).await
                } else {
                    crate::test_util::append_and_flush(&log, b.clone()).await
                }
                .map_err(|x| ctx(x.to_string()))?;
                let base = m.append(&b, *records, *ts);
                if info.base_offset != base || info.last_offset != m.end - 1 {
                    return Err(ctx(format!("assigned {info:?}, model {base}")));
                }
                if matches!(op, Op::AppendDurable { .. }) && log.durable_offset() < m.end {
                    return Err(ctx("append then flush returned before durable".into()));
                }
            }
            Op::Burst { count, len } => {
                let batches: Vec<Bytes> = (0..*count)
                    .map(|i| producer_batch(1, i as i64, *len))
                    .collect();
                let tasks: Vec<_> = batches
                    .iter()
                    .map(|b| {
                        let log = log.clone();
                        let b = b.clone();
                        glommio::spawn_local(async move {
                            crate::test_util::append_and_flush(&log, b).await
                        })
                    })
                    .collect();
                let mut infos = Vec::new();
                for t in tasks {
                    infos.push(t.await.map_err(|x| ctx(x.to_string()))?);
                }
                // Offsets follow first-poll order; put the model in that order.
                let mut order: Vec<usize> = (0..*count).collect();
                order.sort_by_key(|i| infos[*i].base_offset);
                for i in order {
                    let base = m.append(&batches[i], 1, i as i64);
                    if infos[i].base_offset != base {
                        return Err(ctx(format!("burst offsets not contiguous: {:?}", infos[i])));
                    }
                }
                let d = log.durable_offset();
                if d < m.end {
                    return Err(ctx(format!("durable {d} < end {}", m.end)));
                }
            }
            Op::Flush => {
                let d = log.flush().await.map_err(|x| ctx(x.to_string()))?;
                if d != m.end {
                    return Err(ctx(format!("flush returned {d}, end {}", m.end)));
                }
            }
            Op::Read { at, max_bytes } => {
                let from = m.pick(*at) + i64::from(*at % 3) - 1;
                check_read(&log, &m, from, *max_bytes).await.map_err(ctx)?;
            }
            Op::Roll { now_ms } => {
                log.housekeeping(*now_ms)
                    .await
                    .map_err(|x| ctx(x.to_string()))?;
            }
            Op::Retain { bytes } => {
                let mut c = config();
                c.retention_bytes = Some(*bytes);
                log.set_config(c);
                log.flush().await.map_err(|x| ctx(x.to_string()))?;
                log.housekeeping(0).await.map_err(|x| ctx(x.to_string()))?;
                log.set_config(config());
                let start = log.log_start_offset();
                let live = m.first_live();
                if start < m.start
                    || (start != m.start
                        && start != m.end
                        && !m.batches[live..].iter().any(|b| b.0 == start))
                {
                    return Err(ctx(format!(
                        "retention moved start to {start}, not a batch boundary"
                    )));
                }
                let kept: usize = m
                    .batches
                    .iter()
                    .filter(|b| b.1 > start)
                    .map(|b| b.3.len())
                    .sum();
                if kept
                    < (*bytes as usize).min(
                        m.batches
                            .iter()
                            .filter(|b| b.1 > m.start)
                            .map(|b| b.3.len())
                            .sum(),
                    ) / 2
                {
                    return Err(ctx(format!("retention kept only {kept} bytes")));
                }
                m.start = start;
            }
            Op::TruncateTo { at } => {
                let offset = m.pick(*at);
                log.truncate_to(offset)
                    .await
                    .map_err(|x| ctx(x.to_string()))?;
                if offset < m.end {
                    if offset <= m.start {
                        m.batches.clear();
                        m.start = offset;
                        m.end = offset;
                    } else {
                        let i = m.batches.partition_point(|b| b.1 <= offset);
                        if m.batches[i].0 < m.start {
                            m.batches.clear();
                            m.start = offset;
                            m.end = offset;
                        } else {
                            m.end = m.batches[i].0;
                            m.batches.truncate(i);
                        }
                    }
                }
            }
            Op::DeleteRecordsBefore { at } => {
                let offset = m.pick(*at);
                let start = log
                    .delete_records_before(offset)
                    .await
                    .map_err(|x| ctx(x.to_string()))?;
                m.start = m.start.max(offset);
                if start != m.start {
                    return Err(ctx(format!("start {start}, model {}", m.start)));
                }
            }
            Op::OffsetForTimestamp { ts } => {
                let got = log
                    .offset_for_timestamp(*ts)
                    .await
                    .map_err(|x| ctx(x.to_string()))?;
                let expect = m.batches[m.first_live()..]
                    .iter()
                    .find(|b| b.2 >= *ts)
                    .map(|b| (b.0.max(m.start), b.2));
                if got != expect {
                    return Err(ctx(format!("got {got:?}, model {expect:?}")));
                }
            }
            Op::Reopen => {
                log.close().await.map_err(|x| ctx(x.to_string()))?;
                log = PartitionLog::open(dir, config())
                    .await
                    .map_err(|x| ctx(x.to_string()))?;
            }
        }
        check_all(&log, &m).await.map_err(ctx)?;
    }
    log.close().await.map_err(e)?;
    let log = PartitionLog::open(dir, config()).await.map_err(e)?;
    check_all(&log, &m)
        .await
        .map_err(|s| format!("final reopen: {s}"))?;
    log.close().await.map_err(e)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = crate::test_util::test_dir();
        let path = dir.path().to_path_buf();
        let result = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                glommio::future::timeout(std::time::Duration::from_secs(30), run_ops(&path, ops))
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_string()))
            })
            .expect("executor")
            .join()
            .expect("executor thread");
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
