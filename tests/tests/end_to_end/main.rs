//! The end-to-end suite, one binary (linked once, its tests scheduled together): each module
//! starts the real `riffle` binary ($RIFFLE_BIN) and drives it with third-party clients.

mod admin;
mod admin_apis;
mod cli;
mod cluster;
mod cluster_faults;
mod commit_log;
mod compression;
mod config;
mod configs_admin;
mod confluent;
mod connections;
mod consumer_protocol;
mod descriptors;
mod disk_full;
mod fetch;
mod group_offsets;
mod groups;
mod groups_protocol;
mod hostile;
mod kafka_python;
mod kafkajs;
mod kcat;
mod memory;
mod open_files;
mod pipelining;
mod produce;
mod recovery;
mod restart;
mod retention;
mod segment_files;
mod shutdown;
mod smp;
mod startup;
mod topics;
mod wire;
