//! The controller wire format over real loopback sockets, its limits, and hostile input.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use raft::eraftpb::{Message, MessageType};

use crate::transport::*;

fn message(from: u64, index: u64) -> Message {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgAppend);
    message.from = from;
    message.to = 1;
    message.index = index;
    message
}

fn handshake(cluster_id: &str, node_id: u64) -> Vec<u8> {
    encode_handshake(&Handshake {
        cluster_id: cluster_id.into(),
        node_id,
        role: PeerRole::Voter,
    })
}

/// Serves one connection on loopback with a `ConnectionReader` for cluster "prod"; returns
/// the messages read, or the error that closed the connection.
fn serve_one(bytes: Vec<u8>, chunk: usize) -> Result<Vec<Message>, TransportError> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        for piece in bytes.chunks(chunk) {
            if stream.write_all(piece).is_err() {
                break;
            }
        }
        // The server may already have closed on bad input, so the shutdown may fail; either
        // way the client then sees the end of the stream.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    let (mut stream, _) = listener.accept().unwrap();
    let mut reader = ConnectionReader::new("prod");
    let mut messages = Vec::new();
    let mut buf = [0u8; 7];
    let result = loop {
        let read = stream.read(&mut buf).unwrap();
        if read == 0 {
            break Ok(messages);
        }
        match reader.feed(&buf[..read]) {
            Ok(more) => messages.extend(more.into_iter().map(|inbound| match inbound {
                Inbound::Raft(message) => message,
                Inbound::Fetch(request) => panic!("a voter sent a fetch: {request:?}"),
            })),
            Err(error) => break Err(error),
        }
    };
    drop(stream);
    client.join().unwrap();
    result
}

#[test]
fn messages_arrive_in_order_over_loopback_in_any_chunking() {
    let mut bytes = handshake("prod", 2);
    for index in 0..5 {
        bytes.extend(encode_message(&message(2, index)));
    }
    for chunk in [1, 3, 64] {
        let messages = serve_one(bytes.clone(), chunk).unwrap();
        let indexes: Vec<u64> = messages.iter().map(|m| m.index).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3, 4], "chunk {chunk}");
    }
}

#[test]
fn a_node_of_another_cluster_is_refused() {
    let mut bytes = handshake("staging", 2);
    bytes.extend(encode_message(&message(2, 0)));
    assert_eq!(
        serve_one(bytes, 64),
        Err(TransportError::ClusterIdMismatch {
            expected: "prod".into(),
            found: "staging".into()
        })
    );
}

#[test]
fn bad_input_closes_the_connection_with_a_reason() {
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    assert!(serve_one(http, 64).is_err());
    let mut spoofed = handshake("prod", 2);
    spoofed.extend(encode_message(&message(3, 0)));
    assert_eq!(
        serve_one(spoofed, 64),
        Err(TransportError::SenderMismatch {
            claimed: 3,
            peer: 2
        })
    );
}

#[test]
fn frame_length_limit_is_checked_before_reading_the_frame() {
    let mut reader = ConnectionReader::new("prod");
    reader.feed(&handshake("prod", 2)).unwrap();
    let at_limit = (FRAME_MAX_BYTES as u32).to_be_bytes();
    assert_eq!(
        reader.feed(&at_limit),
        Ok(vec![]),
        "a frame at the limit is awaited"
    );
    let mut reader = ConnectionReader::new("prod");
    reader.feed(&handshake("prod", 2)).unwrap();
    let beyond = (FRAME_MAX_BYTES as u32 + 1).to_be_bytes();
    assert_eq!(
        reader.feed(&beyond),
        Err(TransportError::FrameTooLarge {
            size_bytes: FRAME_MAX_BYTES + 1
        })
    );
}

#[test]
fn every_truncation_and_byte_mutation_is_handled_without_panic() {
    let mut bytes = handshake("prod", 2);
    bytes.extend(encode_message(&message(2, 7)));
    for len in 0..bytes.len() {
        let mut reader = ConnectionReader::new("prod");
        assert_eq!(
            reader.feed(&bytes[..len]).map(|m| m.len()),
            Ok(0),
            "len {len}"
        );
    }
    for i in 0..bytes.len() {
        let mut mutated = bytes.clone();
        mutated[i] ^= 0x5a;
        let _ = ConnectionReader::new("prod").feed(&mutated);
    }
}

#[test]
fn peer_queue_is_bounded_and_backoff_doubles_to_its_maximum() {
    let mut queue = PeerQueue::default();
    for index in 0..PEER_QUEUE_MAX_MESSAGES as u64 {
        assert!(queue.push(message(1, index)));
    }
    assert!(
        !queue.push(message(1, 0)),
        "one beyond the limit is dropped"
    );
    assert_eq!((queue.len(), queue.dropped()), (PEER_QUEUE_MAX_MESSAGES, 1));
    assert_eq!(queue.drain().len(), PEER_QUEUE_MAX_MESSAGES);
    assert!(queue.is_empty());

    let mut now_ms = 0;
    let mut waits = Vec::new();
    for _ in 0..10 {
        queue.connect_failed(now_ms);
        let start = now_ms;
        while !queue.may_connect(now_ms) {
            now_ms += 1;
        }
        waits.push(now_ms - start);
    }
    assert_eq!(waits[..4], [50, 100, 200, 400]);
    assert_eq!(*waits.last().unwrap(), RECONNECT_BACKOFF_MAX_MS);
    queue.connected();
    queue.connect_failed(now_ms);
    assert!(queue.may_connect(now_ms + RECONNECT_BACKOFF_MIN_MS));
}
