//! Kafka wire protocol codec (sans-io).
pub mod record_batch;
