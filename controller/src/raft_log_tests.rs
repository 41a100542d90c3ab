//! The durable Raft log: what is written comes back after a reopen, a torn tail is cut,
//! compaction keeps the term before the first entry, snapshots replace the log atomically.

use std::fs::OpenOptions;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

use crate::raft_log::RaftLog;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("payload-{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn bootstrapped(dir: &std::path::Path) -> RaftLog {
    let mut log = RaftLog::open(dir).unwrap();
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 1;
    snapshot.mut_metadata().term = 1;
    snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    log.install_snapshot(snapshot).unwrap();
    log
}

fn all_entries(log: &RaftLog) -> Vec<(u64, u64)> {
    let (first, last) = (log.first_index().unwrap(), log.last_index().unwrap());
    log.entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

#[test]
fn entries_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&[entry(2, 1), entry(3, 2)]).unwrap();
    let hard_state = HardState {
        term: 2,
        vote: 3,
        commit: 3,
        ..Default::default()
    };
    log.set_hard_state(hard_state.clone()).unwrap();
    drop(log);
    let log = RaftLog::open(dir.path()).unwrap();
    assert_eq!(all_entries(&log), vec![(2, 1), (3, 2)]);
    assert_eq!(log.hard_state(), &hard_state);
    assert_eq!(log.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(log.term(1).unwrap(), 1, "the bootstrap snapshot's term");
}

#[test]
fn recovery_truncates_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&[entry(2, 1), entry(3, 1), entry(4, 1)])
        .unwrap();
    drop(log);
    let path = dir.path().join("log");
    let len = std::fs::metadata(&path).unwrap().len();
    // Every cut inside the last frame loses exactly that entry.
    for cut in 1..12 {
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - cut).unwrap();
        drop(file);
        let mut log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(all_entries(&log), vec![(2, 1), (3, 1)], "cut {cut}");
        log.append(&[entry(4, 1)]).unwrap();
        drop(log);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xff; 7]);
    std::fs::write(&path, bytes).unwrap();
    let log = RaftLog::open(dir.path()).unwrap();
    assert_eq!(
        all_entries(&log).len(),
        3,
        "garbage after the last frame is cut"
    );
}

#[test]
fn conflicting_append_replaces_the_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&[entry(2, 1), entry(3, 1), entry(4, 1)])
        .unwrap();
    log.append(&[entry(3, 2)]).unwrap();
    assert_eq!(all_entries(&log), vec![(2, 1), (3, 2)]);
    drop(log);
    assert_eq!(
        all_entries(&RaftLog::open(dir.path()).unwrap()),
        vec![(2, 1), (3, 2)]
    );
}

#[test]
fn compaction_keeps_the_term_before_the_first_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&(2..=6).map(|i| entry(i, i / 2)).collect::<Vec<_>>())
        .unwrap();
    log.create_snapshot(4, b"image".to_vec()).unwrap();
    for log in [log, RaftLog::open(dir.path()).unwrap()] {
        assert_eq!(log.first_index().unwrap(), 5);
        assert_eq!(log.term(4).unwrap(), 2);
        assert!(matches!(
            log.term(3),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            log.entries(3, 5, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(all_entries(&log), vec![(5, 2), (6, 3)]);
        let snapshot = log.snapshot(0, 2).unwrap();
        assert_eq!(snapshot.get_metadata().index, 4);
        assert_eq!(snapshot.get_data(), b"image");
        assert_eq!(
            snapshot.get_metadata().get_conf_state().voters,
            vec![1, 2, 3]
        );
    }
}

#[test]
fn crash_between_snapshot_and_log_rewrite_drops_covered_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&(2..=6).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .unwrap();
    let old_log = std::fs::read(dir.path().join("log")).unwrap();
    log.create_snapshot(4, b"image".to_vec()).unwrap();
    drop(log);
    // As if the process died after the snapshot's rename and before the log's.
    std::fs::write(dir.path().join("log"), old_log).unwrap();
    let log = RaftLog::open(dir.path()).unwrap();
    assert_eq!(all_entries(&log), vec![(5, 1), (6, 1)]);
    assert_eq!(
        log.hard_state().commit,
        4,
        "a snapshot holds committed state only"
    );
}

#[test]
fn installed_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&[entry(2, 1), entry(3, 1)]).unwrap();
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 10;
    snapshot.mut_metadata().term = 4;
    snapshot
        .mut_metadata()
        .set_conf_state(ConfState::from((vec![1, 2, 3, 4], vec![])));
    snapshot.set_data(b"leader image".to_vec().into());
    log.install_snapshot(snapshot).unwrap();
    drop(log);
    let mut log = RaftLog::open(dir.path()).unwrap();
    assert_eq!(log.first_index().unwrap(), 11);
    assert_eq!(log.last_index().unwrap(), 10);
    assert_eq!(log.term(10).unwrap(), 4);
    assert_eq!(log.hard_state().commit, 10);
    assert_eq!(log.conf_state().voters, vec![1, 2, 3, 4]);
    log.append(&[entry(11, 4)]).unwrap();
    assert_eq!(all_entries(&log), vec![(11, 4)]);
}

#[test]
fn corrupt_state_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    drop(bootstrapped(dir.path()));
    std::fs::write(dir.path().join("raft_state"), b"\x05\x00\x00\x00garbage").unwrap();
    let error = RaftLog::open(dir.path())
        .err()
        .expect("a corrupt state file");
    assert!(error.to_string().contains("corrupt"), "{error}");
}

#[test]
fn crash_between_snapshot_install_and_state_takes_the_snapshot_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrapped(dir.path());
    log.append(&[entry(2, 1)]).unwrap();
    let old_state = std::fs::read(dir.path().join("raft_state")).unwrap();
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 10;
    snapshot.mut_metadata().term = 4;
    snapshot
        .mut_metadata()
        .set_conf_state(ConfState::from((vec![1, 2, 4], vec![])));
    log.install_snapshot(snapshot).unwrap();
    drop(log);
    // As if the process died after the snapshot and the log were replaced, before the state.
    std::fs::write(dir.path().join("raft_state"), old_state).unwrap();
    let log = RaftLog::open(dir.path()).unwrap();
    assert_eq!(log.hard_state().commit, 10);
    assert_eq!(log.conf_state().voters, vec![1, 2, 4]);
}
