//! riffle-controller: the controller quorum's building blocks, sans-io. A Raft group
//! (raft-rs) replicates the metadata log; every node applies it to the same
//! `MetadataImage`. The caller owns the clock, the sockets and the task, and drives a `Node`.
//!
//! Driving a node: `Node::open(NodeConfig, dir)`; every tick `node.tick(now_ms)`; for each
//! message read by the transport `node.step(msg)`; then `node.drive()`, send
//! `node.take_messages()` (and call `report_snapshot` for every `MsgSnapshot` once its
//! send ends, `report_unreachable` when a peer cannot be reached), and answer callers from
//! `node.take_outcomes()`. Build records with `placement::plan_*` from `node.image()`.
//!
//! raft-rs 0.7 traps (RAFT.md) and where they are handled:
//! - slog, not tracing, and a global default logger: `logger` bridges slog to tracing.
//! - Persist before `persisted_messages` go out: `Node::handle_ready` keeps RAFT.md's order.
//! - Snapshots stall without `report_snapshot`: `Node::report_snapshot`, used by `sim`.
//! - A leader that removes itself panics: `propose_remove_voter` refuses the leader, and a
//!   committed removal of the leader is applied only after it stepped down.
//! - `MemStorage` forgets `term(first_index - 1)`: `RaftLog` keeps the snapshot's term.
//! - `Config.applied` must match the restored state: the snapshot index, image restored from it.
//! - Unseeded election randomness: `NodeConfig::election_tick_range` of width 1 in `sim`.

/// raft-rs's message types, for the transport that carries them (one raft version for all).
pub use raft::eraftpb;

pub mod image;
mod liveness;
mod logger;
pub mod node;
pub mod observer;
mod pending;
pub mod placement;
pub mod raft_log;
pub mod records;
#[doc(hidden)]
pub mod sim;
pub mod transport;

#[cfg(test)]
mod image_tests;
#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod observer_tests;
#[cfg(test)]
mod raft_log_tests;
#[cfg(test)]
mod transport_tests;
