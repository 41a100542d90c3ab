//! The command line and the TOML config file: node id, advertised address and broker defaults
//! reach what clients see.

use riffle_protocol::messages::metadata_request::MetadataRequestTopic;
use riffle_protocol::messages::{MetadataRequest, MetadataResponse};
use riffle_tests::kafka::{self, Connection};
use riffle_tests::{scratch_dir, Broker, BrokerOptions};

#[test]
fn config_file_and_flags_set_node_id_advertised_address_and_default_partitions() {
    let scratch = scratch_dir("riffle-config-");
    let config = scratch.path().join("riffle.toml");
    std::fs::write(&config, "node_id = 7\nnum_partitions = 3\n").expect("write the config file");
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--config".to_string(),
            config.to_str().expect("UTF-8 path").to_string(),
            "--advertised".to_string(),
            "localhost:19092".to_string(),
        ],
        ..Default::default()
    });
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let md: MetadataResponse = conn
        .request(
            kafka::METADATA_VERSION,
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some("auto-from-config".to_string()),
                    ..Default::default()
                }]),
                allow_auto_topic_creation: true,
                ..Default::default()
            },
        )
        .expect("Metadata");
    let brokers: Vec<(i32, &str, i32)> = md
        .brokers
        .iter()
        .map(|b| (b.node_id, b.host.as_str(), b.port))
        .collect();
    assert_eq!(brokers, vec![(7, "localhost", 19092)], "advertised broker");
    assert_eq!(md.controller_id, 7);
    let topic = &md.topics[0];
    assert_eq!(topic.name.as_deref(), Some("auto-from-config"));
    assert_eq!(
        topic.partitions.len(),
        3,
        "auto-created with num_partitions from the config file: {topic:?}"
    );
    assert!(topic.partitions.iter().all(|p| p.leader_id == 7));
}
