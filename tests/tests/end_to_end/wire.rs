//! Exact request bytes real clients send, replayed: each must get its answer, not a closed
//! connection.

use riffle_protocol::messages::MetadataResponse;
use riffle_tests::kafka::Connection;
use riffle_tests::Broker;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// librdkafka 2.16.1 (confluent-kafka 2.16.1) `AdminClient.list_topics()`: Metadata v12 whose body
/// has 3 bytes after the fields our codec knows. Kafka ignores them.
#[test]
fn librdkafka_2_16_metadata_v12_with_trailing_bytes_is_answered() {
    let broker = Broker::start();
    let mut conn = Connection::connect(&broker.addr()).expect("connect");
    let request: Vec<u8> = [
        &[0x00, 0x03, 0x00, 0x0c][..],               // Metadata v12
        &[0x00, 0x00, 0x00, 0x03],                   // correlation id 3
        &[0x00, 0x07],                               // client id length
        b"rdkafka",                                  // client id
        &[0x00],                                     // header tagged fields
        &[0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00], // body as captured
    ]
    .concat();
    conn.send_raw(&frame(&request)).expect("send");
    let response = conn
        .read_frame()
        .expect("a Metadata response, not a closed connection");
    let (correlation_id, _md) =
        riffle_protocol::decode_response::<MetadataResponse>(response, 12).expect("decode");
    assert_eq!(correlation_id, 3);
}
