//! Kafka wire protocol codec (sans-io).
