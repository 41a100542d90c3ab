//! The `authorized_operations` bit fields of Metadata, DescribeCluster and DescribeGroups. Riffle
//! has no authorizer, so, as Kafka without one, every operation a resource type supports is
//! allowed; a client that did not ask gets Kafka's "not provided" value.

/// Kafka's AclOperation codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// What the field holds when the client did not ask for it.
const NOT_PROVIDED: i32 = i32::MIN;

/// Operations Kafka supports on each resource type (`AclEntry.supportedOperations`).
pub const TOPIC: &[u8] = &[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
];
pub const CLUSTER: &[u8] = &[
    CREATE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    ALTER,
    DESCRIBE,
];
pub const GROUP: &[u8] = &[READ, DESCRIBE, DELETE];

/// The bit field for `operations`, or "not provided" when the client did not ask.
pub fn bits(requested: bool, operations: &[u8]) -> i32 {
    if !requested {
        return NOT_PROVIDED;
    }
    operations.iter().fold(0, |bits, op| bits | (1 << op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_operation_is_allowed_when_asked() {
        assert_eq!(bits(true, TOPIC).count_ones(), 8);
        assert_eq!(bits(true, CLUSTER).count_ones(), 7);
        assert_eq!(bits(true, GROUP), (1 << 3) | (1 << 8) | (1 << 6));
        assert_eq!(bits(false, TOPIC), i32::MIN);
    }
}
