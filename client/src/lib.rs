//! riffle-client: a small blocking Kafka client over `riffle-protocol`, for tools rather than
//! throughput: bootstrap and ApiVersions negotiation, Metadata, topic and group
//! administration, produce, fetch, ListOffsets, and the classic consumer group member.
//! It speaks only the Kafka protocol, so it works against any Kafka-compatible broker.

mod admin;
mod client;
mod connection;
pub mod consumer_protocol;
mod error;
mod fetch;
pub mod group;
mod groups;
mod offsets;
mod produce;

pub use admin::{BrokerInfo, ClusterInfo, ConfigEntry, NewTopic};
pub use client::{find_topic, Client, PartitionInfo, READY_TIMEOUT};
pub use connection::{resolve, ConnectOptions, Connection, GroupVersions, Versions};
pub use error::{error_description, error_name, ClientError};
pub use fetch::{
    fetch_request, for_each_record, ConsumedRecord, FetchedPartition, RecordsRead,
    DECOMPRESSED_MAX_BYTES,
};
pub use groups::{CommittedOffsets, GroupDescription, GroupListing, GroupMemberInfo};
pub use offsets::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
pub use produce::{partition_for_key, ProduceRecord};
pub use riffle_protocol::error_code;
