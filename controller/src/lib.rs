//! riffle-controller: the controller quorum's building blocks, sans-io. A Raft group
//! (raft-rs) replicates the metadata log; every node applies it to the same
//! `MetadataImage`. The caller owns the clock, the sockets and the task, and drives a `Node`.

pub mod image;
mod liveness;
mod logger;
pub mod node;
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
mod raft_log_tests;
#[cfg(test)]
mod transport_tests;
