//! Crash test: a child process (this test binary re-executed) appends with group commit
//! and prints every durable acknowledgement; the parent SIGKILLs it at random moments,
//! reopens the log and checks that every acknowledged batch is present and byte-identical
//! and that everything served is whole, CRC-valid and contiguous. Bounded: 10 rounds.

use bytes::Bytes;
use riffle_batch_header::{
    compute_crc, LogOverhead, RecordBatchHeader, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2,
};
use riffle_storage::{LogConfig, PartitionLog};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RIFFLE_STORAGE_CRASH_CHILD";
const ROUNDS: u64 = 10;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 512 << 10,
        index_interval_bytes: 4096,
        tail_cache_bytes: 256 << 10,
        preallocate_bytes: 256 << 10,
        ..LogConfig::default()
    }
}

/// A RecordBatch v2 whose content is a pure function of `key` (base offset 0 as sent).
fn batch_for(key: u64) -> Vec<u8> {
    let payload_len = 50 + (key.wrapping_mul(2_654_435_761) % 4_000) as usize;
    let records = 1 + (key % 5) as i32;
    let size = HEADER_BYTES + payload_len;
    let mut b = vec![0u8; size];
    let h = RecordBatchHeader::view_mut(&mut b).unwrap();
    h.log.batch_length.set((size - LOG_OVERHEAD) as i32);
    h.magic = MAGIC_V2;
    h.last_offset_delta.set(records - 1);
    h.base_timestamp.set(key as i64);
    h.max_timestamp.set(key as i64);
    h.record_count.set(records);
    for (i, x) in b[HEADER_BYTES..].iter_mut().enumerate() {
        *x = (key as usize * 31 + i * 7) as u8;
    }
    let crc = compute_crc(&b).unwrap();
    RecordBatchHeader::view_mut(&mut b).unwrap().crc.set(crc);
    b
}

fn data_dir() -> tempfile::TempDir {
    // CARGO_TARGET_TMPDIR is on the build disk (a real filesystem, not tmpfs).
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(base)
        .unwrap()
}

/// The child: appends forever from 8 concurrent tasks; prints `key base last` per ack.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: u64 = std::env::var("RIFFLE_STORAGE_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move {
            let log = PartitionLog::open(&dir, config())
                .await
                .expect("child open");
            let tasks: Vec<_> = (0..8u64)
                .map(|t| {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        for seq in 0.. {
                            let key = (round << 40) | (t << 32) | seq;
                            // Acknowledged as the broker does acks=all: append, then flush.
                            let info = log
                                .append(Bytes::from(batch_for(key)))
                                .await
                                .expect("append");
                            log.flush().await.expect("flush");
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "{key} {} {}", info.base_offset, info.last_offset)
                                .unwrap();
                            out.flush().unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

fn run_child(dir: &Path, round: u64, kill_after: Duration) -> Vec<(u64, i64, i64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .env("RIFFLE_STORAGE_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Vec<&str> = line.split(' ').collect();
            if let [k, b, l] = v[..] {
                if let (Ok(k), Ok(b), Ok(l)) = (k.parse(), b.parse(), l.parse()) {
                    acks.push((k, b, l));
                }
            }
        }
        acks
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let started = Instant::now();
    let dir = data_dir();
    let mut acked: BTreeMap<i64, (u64, i64)> = BTreeMap::new(); // base -> (key, last)
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = Duration::from_millis(80 + seed % 400);
        let acks = run_child(dir.path(), round, kill_after);
        for (key, base, last) in acks {
            acked.insert(base, (key, last));
        }
        verify(dir.path().to_path_buf(), acked.clone(), round);
    }
    eprintln!("crash test took {:?}", started.elapsed());
    assert!(
        acked.len() > 50,
        "only {} acknowledged batches",
        acked.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Reopens the log and checks every acknowledged batch and the validity of everything.
fn verify(dir: PathBuf, acked: BTreeMap<i64, (u64, i64)>, round: u64) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move {
            let log = PartitionLog::open(&dir, config())
                .await
                .expect("reopen after SIGKILL");
            let end = log.log_end_offset();
            let acked_end = acked.values().map(|(_, last)| last + 1).max().unwrap_or(0);
            assert!(
                end >= acked_end,
                "round {round}: log end {end} < acknowledged {acked_end}"
            );
            let mut at = 0;
            let mut seen = 0;
            while at < end {
                let r = log.read(at, 1 << 20).await.expect("read");
                let bytes: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
                let mut p = 0;
                while p < bytes.len() {
                    let h = RecordBatchHeader::view(&bytes[p..]).expect("a whole header");
                    let len = h.batch_size().expect("a valid batch length");
                    let b = &bytes[p..p + len];
                    let base = h.base_offset();
                    assert_eq!(base, at, "round {round}: offsets contiguous");
                    assert_eq!(
                        compute_crc(b),
                        Some(h.crc.get()),
                        "round {round}: CRC at offset {base}"
                    );
                    if let Some((key, last)) = acked.get(&base) {
                        let mut expect = batch_for(*key);
                        LogOverhead::view_mut(&mut expect)
                            .unwrap()
                            .base_offset
                            .set(base);
                        assert!(
                            expect == b,
                            "round {round}: acknowledged batch at {base} differs"
                        );
                        assert_eq!(h.last_offset(), *last);
                        seen += 1;
                    }
                    at = h.last_offset() + 1;
                    p += len;
                }
            }
            assert_eq!(
                seen,
                acked.len(),
                "round {round}: every acknowledged batch is present"
            );
            eprintln!("round {round}: log end {end}, {seen} acknowledged batches verified");
            log.close().await.expect("close");
        })
        .unwrap()
        .join()
        .unwrap();
}
