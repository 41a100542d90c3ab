//! Generates the message codec from Kafka's JSON definitions in `schema/` into OUT_DIR.

use std::path::PathBuf;

use riffle_protocol_codegen::{generate, ApiSpec};

/// The APIs we serve and the lowest version we decode (Kafka 4.0's floors, Produce from 3:
/// v0-2 are advertised but answered UNSUPPORTED_VERSION, see KAFKA-APIS.md, so the codec still
/// reads and writes them though Kafka 4's JSON starts at v3).
const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "Produce",
        min_version: 3,
        codec_from: Some(0),
    },
    ApiSpec {
        name: "Fetch",
        min_version: 4,
        codec_from: None,
    },
    ApiSpec {
        name: "ListOffsets",
        min_version: 1,
        codec_from: None,
    },
    ApiSpec {
        name: "Metadata",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "OffsetCommit",
        min_version: 2,
        codec_from: None,
    },
    ApiSpec {
        name: "OffsetFetch",
        min_version: 1,
        codec_from: None,
    },
    ApiSpec {
        name: "FindCoordinator",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "JoinGroup",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "Heartbeat",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "LeaveGroup",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "SyncGroup",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeGroups",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "ListGroups",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "SaslHandshake",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "ApiVersions",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "CreateTopics",
        min_version: 2,
        codec_from: None,
    },
    ApiSpec {
        name: "DeleteTopics",
        min_version: 1,
        codec_from: None,
    },
    ApiSpec {
        name: "DeleteRecords",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "InitProducerId",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "OffsetForLeaderEpoch",
        min_version: 2,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeConfigs",
        min_version: 1,
        codec_from: None,
    },
    ApiSpec {
        name: "AlterConfigs",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "SaslAuthenticate",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "CreatePartitions",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DeleteGroups",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "OffsetDelete",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "IncrementalAlterConfigs",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeCluster",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeClientQuotas",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "AlterClientQuotas",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "ListConfigResources",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeTopicPartitions",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeLogDirs",
        min_version: 1,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeProducers",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "DescribeQuorum",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "ConsumerGroupHeartbeat",
        min_version: 0,
        codec_from: None,
    },
    ApiSpec {
        name: "ConsumerGroupDescribe",
        min_version: 0,
        codec_from: None,
    },
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let schema = manifest.join("schema");
    println!("cargo:rerun-if-changed=schema");
    println!("cargo:rerun-if-changed=build.rs");
    let generated = match generate(&schema, APIS) {
        Ok(g) => g,
        Err(e) => panic!("generating the codec from {}: {e}", schema.display()),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("messages.rs"), generated.messages).expect("write messages.rs");
    std::fs::write(out.join("api.rs"), generated.api).expect("write api.rs");
}
