//! Kafka error codes (from Apache Kafka's `Errors` enum), named as Kafka names them.

/// The server experienced an unexpected error when processing the request.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const NONE: i16 = 0;
/// The requested offset is not within the range of offsets maintained by the server.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.
pub const CORRUPT_MESSAGE: i16 = 2;
/// This server does not host this topic-partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// The requested fetch size is invalid.
pub const INVALID_FETCH_SIZE: i16 = 4;
/// There is no leader for this topic-partition as we are in the middle of a leadership election.
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// The request timed out.
pub const REQUEST_TIMED_OUT: i16 = 7;
/// The broker is not available.
pub const BROKER_NOT_AVAILABLE: i16 = 8;
/// The replica is not available for the requested topic-partition. Produce/Fetch requests and other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition.
pub const REPLICA_NOT_AVAILABLE: i16 = 9;
/// The request included a message larger than the max message size the server will accept.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// The controller moved to another broker.
pub const STALE_CONTROLLER_EPOCH: i16 = 11;
/// The metadata field of the offset request was too large.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The server disconnected before a response was received.
pub const NETWORK_EXCEPTION: i16 = 13;
/// The coordinator is loading and hence can't process requests.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// The coordinator is not available.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// This is not the correct coordinator.
pub const NOT_COORDINATOR: i16 = 16;
/// The request attempted to perform an operation on an invalid topic.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// The request included message batch larger than the configured segment size on the server.
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
/// Messages are rejected since there are fewer in-sync replicas than required.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
/// Messages are written to the log, but to fewer in-sync replicas than required.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
/// Produce request specified an invalid value for required acks.
pub const INVALID_REQUIRED_ACKS: i16 = 21;
/// Specified group generation id is not valid.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The configured groupId is invalid.
pub const INVALID_GROUP_ID: i16 = 24;
/// The coordinator is not aware of this member.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing, so a rejoin is needed.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// The committing offset data size is not valid.
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
/// Topic authorization failed.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// Group authorization failed.
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// Cluster authorization failed.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// The timestamp of the message is out of acceptable range.
pub const INVALID_TIMESTAMP: i16 = 32;
/// The broker does not support the requested SASL mechanism.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// Request is not valid given the current SASL state.
pub const ILLEGAL_SASL_STATE: i16 = 34;
/// The version of API is not supported.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Topic with this name already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Number of partitions is below 1.
pub const INVALID_PARTITIONS: i16 = 37;
/// Replication factor is below 1 or larger than the number of available brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Replica assignment is invalid.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// Configuration is invalid.
pub const INVALID_CONFIG: i16 = 40;
/// This is not the correct controller for this cluster.
pub const NOT_CONTROLLER: i16 = 41;
/// This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.
pub const INVALID_REQUEST: i16 = 42;
/// The message format version on the broker does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// Request parameters do not satisfy the configured policy.
pub const POLICY_VIOLATION: i16 = 44;
/// The broker received an out of order sequence number.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// The broker received a duplicate sequence number.
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// Producer attempted to produce with an old epoch.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// The producer attempted a transactional operation in an invalid state.
pub const INVALID_TXN_STATE: i16 = 48;
/// The producer attempted to use a producer id which is not currently assigned to its transactional id.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
/// The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms).
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
/// The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing.
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
/// Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer.
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
/// Transactional Id authorization failed.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// Security features are disabled.
pub const SECURITY_DISABLED: i16 = 54;
/// The broker did not attempt to execute this operation. This may happen for batched RPCs where some operations in the batch failed, causing the broker to respond without trying the rest.
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
/// Disk error when trying to access log file on the disk.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// The user-specified log directory is not found in the broker config.
pub const LOG_DIR_NOT_FOUND: i16 = 57;
/// SASL Authentication failed.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// This exception is raised by the broker if it could not locate the producer metadata associated with the producerId in question. This could happen if, for instance, the producer's records were deleted because their retention time had elapsed. Once the last records of the producerId are removed, the producer's metadata is removed from the broker, and future appends by the producer will return this exception.
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
/// A partition reassignment is in progress.
pub const REASSIGNMENT_IN_PROGRESS: i16 = 60;
/// Delegation Token feature is not enabled.
pub const DELEGATION_TOKEN_AUTH_DISABLED: i16 = 61;
/// Delegation Token is not found on server.
pub const DELEGATION_TOKEN_NOT_FOUND: i16 = 62;
/// Specified Principal is not valid Owner/Renewer.
pub const DELEGATION_TOKEN_OWNER_MISMATCH: i16 = 63;
/// Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated channels.
pub const DELEGATION_TOKEN_REQUEST_NOT_ALLOWED: i16 = 64;
/// Delegation Token authorization failed.
pub const DELEGATION_TOKEN_AUTHORIZATION_FAILED: i16 = 65;
/// Delegation Token is expired.
pub const DELEGATION_TOKEN_EXPIRED: i16 = 66;
/// Supplied principalType is not supported.
pub const INVALID_PRINCIPAL_TYPE: i16 = 67;
/// The group is not empty.
pub const NON_EMPTY_GROUP: i16 = 68;
/// The group id does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// The fetch session ID was not found.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// The fetch session epoch is invalid.
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
/// There is no listener on the leader broker that matches the listener on which metadata request was processed.
pub const LISTENER_NOT_FOUND: i16 = 72;
/// Topic deletion is disabled.
pub const TOPIC_DELETION_DISABLED: i16 = 73;
/// The leader epoch in the request is older than the epoch on the broker.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// The leader epoch in the request is newer than the epoch on the broker.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// The requesting client does not support the compression type of given partition.
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
/// Broker epoch has changed.
pub const STALE_BROKER_EPOCH: i16 = 77;
/// The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing.
pub const OFFSET_NOT_AVAILABLE: i16 = 78;
/// The group member needs to have a valid member id before actually entering a consumer group.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// The preferred leader was not available.
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// The consumer group has reached its max size.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// Eligible topic partition leaders are not available.
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
/// Leader election not needed for topic partition.
pub const ELECTION_NOT_NEEDED: i16 = 84;
/// No partition reassignment is in progress.
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
/// Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// This record has failed the validation on broker and hence will be rejected.
pub const INVALID_RECORD: i16 = 87;
/// There are unstable offsets that need to be cleared.
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// The throttling quota has been exceeded.
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
/// There is a newer producer with the same transactionalId which fences the current one.
pub const PRODUCER_FENCED: i16 = 90;
/// A request illegally referred to a resource that does not exist.
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// A request illegally referred to the same resource twice.
pub const DUPLICATE_RESOURCE: i16 = 92;
/// Requested credential would not meet criteria for acceptability.
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
/// Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters.
pub const INCONSISTENT_VOTER_SET: i16 = 94;
/// The given update version was invalid.
pub const INVALID_UPDATE_VERSION: i16 = 95;
/// Unable to update finalized features due to an unexpected server error.
pub const FEATURE_UPDATE_FAILED: i16 = 96;
/// Request principal deserialization failed during forwarding. This indicates an internal error on the broker cluster security setup.
pub const PRINCIPAL_DESERIALIZATION_FAILURE: i16 = 97;
/// Requested snapshot was not found.
pub const SNAPSHOT_NOT_FOUND: i16 = 98;
/// This server does not host this topic ID.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// This broker ID is already in use.
pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
/// The given broker ID was not registered.
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
/// The log's topic ID did not match the topic ID in the request.
pub const INCONSISTENT_TOPIC_ID: i16 = 103;
/// The clusterId in the request does not match that found on the server.
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
/// The transactionalId could not be found.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
/// The fetch session encountered inconsistent topic ID usage.
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
/// The new ISR contains at least one ineligible replica.
pub const INELIGIBLE_REPLICA: i16 = 107;
/// The AlterPartition request successfully updated the partition state but the leader has changed.
pub const NEW_LEADER_ELECTED: i16 = 108;
/// The requested offset is moved to tiered storage.
pub const OFFSET_MOVED_TO_TIERED_STORAGE: i16 = 109;
/// The member epoch is fenced by the group coordinator. The member must abandon all its partitions and rejoin.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// The instance ID is still used by another member in the consumer group. That member must leave first.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// The assignor or its version range is not supported by the consumer group.
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
/// The member epoch is stale. The member must retry after receiving its updated member epoch via the ConsumerGroupHeartbeat API.
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// The request was sent to an endpoint of the wrong type.
pub const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
/// This endpoint type is not supported yet.
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
/// This controller ID is not known.
pub const UNKNOWN_CONTROLLER_ID: i16 = 116;
/// Client sent a push telemetry request with an invalid or outdated subscription ID.
pub const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
/// Client sent a push telemetry request larger than the maximum size the broker will accept.
pub const TELEMETRY_TOO_LARGE: i16 = 118;
/// The controller has considered the broker registration to be invalid.
pub const INVALID_REGISTRATION: i16 = 119;
/// The server encountered an error with the transaction. The client can abort the transaction to continue using this transactional ID.
pub const TRANSACTION_ABORTABLE: i16 = 120;
/// The record state is invalid. The acknowledgement of delivery could not be completed.
pub const INVALID_RECORD_STATE: i16 = 121;
/// The share session was not found.
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
/// The share session epoch is invalid.
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
/// The share coordinator rejected the request because the share-group state epoch did not match.
pub const FENCED_STATE_EPOCH: i16 = 124;
/// The voter key doesn't match the receiving replica's key.
pub const INVALID_VOTER_KEY: i16 = 125;
/// The voter is already part of the set of voters.
pub const DUPLICATE_VOTER: i16 = 126;
/// The voter is not part of the set of voters.
pub const VOTER_NOT_FOUND: i16 = 127;
/// The regular expression is not valid.
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
