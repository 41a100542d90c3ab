//! Kafka's consumer protocol, the bytes a classic group carries for protocol type "consumer":
//! ConsumerProtocolSubscription (JoinGroup metadata) and ConsumerProtocolAssignment (SyncGroup
//! assignment), written at version 0; and the "range" assignor the group leader runs.
//! Newer versions only append fields, so a decoder reads the version-0 fields and stops there.

use std::collections::BTreeMap;

use riffle_protocol::Bytes;

/// The protocol name of the range assignor in JoinGroup.
pub const RANGE: &str = "range";
/// The protocol type of Kafka consumers in JoinGroup and SyncGroup.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The version this client writes.
const VERSION: i16 = 0;

/// A member's JoinGroup metadata: the topics it subscribes to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
}

/// What the leader gives a member in SyncGroup: (topic, partitions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assignment {
    pub partitions: Vec<(String, Vec<i32>)>,
    pub user_data: Option<Bytes>,
}

impl Subscription {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        put_len(&mut out, self.topics.len());
        for t in &self.topics {
            put_string(&mut out, t);
        }
        put_nullable_bytes(&mut out, self.user_data.as_deref());
        out.into()
    }

    pub fn decode(data: &[u8]) -> Result<Subscription, String> {
        let mut r = Reader { data };
        r.version("subscription")?;
        let n = r.array_len("subscription topics")?;
        let topics = (0..n)
            .map(|_| r.string("subscription topic"))
            .collect::<Result<_, _>>()?;
        let user_data = r.nullable_bytes("subscription user data")?;
        Ok(Subscription { topics, user_data })
    }
}

impl Assignment {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        put_len(&mut out, self.partitions.len());
        for (topic, partitions) in &self.partitions {
            put_string(&mut out, topic);
            put_len(&mut out, partitions.len());
            for p in partitions {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        put_nullable_bytes(&mut out, self.user_data.as_deref());
        out.into()
    }

    /// Empty bytes are the empty assignment (Kafka's coordinator sends them to a member the
    /// leader left out).
    pub fn decode(data: &[u8]) -> Result<Assignment, String> {
        if data.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { data };
        r.version("assignment")?;
        let n = r.array_len("assignment topics")?;
        let mut partitions = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let topic = r.string("assignment topic")?;
            let m = r.array_len("assignment partitions")?;
            let ids = (0..m)
                .map(|_| r.i32("assignment partition"))
                .collect::<Result<_, _>>()?;
            partitions.push((topic, ids));
        }
        let user_data = r.nullable_bytes("assignment user data")?;
        Ok(Assignment {
            partitions,
            user_data,
        })
    }

    /// The partitions of `topic` in this assignment, sorted.
    pub fn of_topic(&self, topic: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(t, _)| t == topic)
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Kafka's RangeAssignor: per topic, its subscribers sorted by member id each take a
/// consecutive range of the sorted partitions, the first `partitions % subscribers` one more.
/// `members` are (member id, subscription); `topics` maps each topic the leader knows to its
/// partitions (a subscribed topic it does not know is left unassigned). Every member gets an
/// entry, possibly empty.
pub fn range_assign(
    members: &[(String, Subscription)],
    topics: &BTreeMap<String, Vec<i32>>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _)| (id.clone(), Assignment::default()))
        .collect();
    for (topic, partitions) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(id, _)| id.as_str())
            .collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        if subscribers.is_empty() {
            continue;
        }
        let mut partitions = partitions.clone();
        partitions.sort_unstable();
        let (per_member, extra) = (
            partitions.len() / subscribers.len(),
            partitions.len() % subscribers.len(),
        );
        let mut start = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let n = per_member + usize::from(i < extra);
            if n > 0 {
                let a = out.get_mut(*id).expect("every subscriber is a member");
                a.partitions
                    .push((topic.clone(), partitions[start..start + n].to_vec()));
            }
            start += n;
        }
        debug_assert_eq!(start, partitions.len());
    }
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Topic names are at most 249 bytes; a longer string would not be a topic.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_nullable_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            put_len(out, b.len());
            out.extend_from_slice(b);
        }
    }
}

/// Reads big-endian fields; errors name the field that did not fit.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], String> {
        if self.data.len() < n {
            return Err(format!("consumer protocol: {field} truncated"));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn i16(&mut self, field: &'static str) -> Result<i16, String> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, String> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn version(&mut self, what: &'static str) -> Result<i16, String> {
        let v = self.i16(what)?;
        if v < 0 {
            return Err(format!("consumer protocol: {what} version {v}"));
        }
        Ok(v)
    }
    /// An array length, checked against the bytes left (each element takes at least 2).
    fn array_len(&mut self, field: &'static str) -> Result<usize, String> {
        let n = self.i32(field)?;
        if n < 0 || n as usize > self.data.len() / 2 {
            return Err(format!("consumer protocol: {field} length {n}"));
        }
        Ok(n as usize)
    }
    fn string(&mut self, field: &'static str) -> Result<String, String> {
        let n = self.i16(field)?;
        if n < 0 {
            return Err(format!("consumer protocol: null {field}"));
        }
        let b = self.take(n as usize, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("consumer protocol: {field} not UTF-8"))
    }
    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, String> {
        let n = self.i32(field)?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize, field)?;
        Ok(Some(Bytes::copy_from_slice(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topics: &[&str]) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            user_data: None,
        }
    }

    #[test]
    fn subscription_matches_the_bytes_of_the_kafka_spec() {
        // version 0 | topics: [ "ab" ] | user_data: null
        let expected: &[u8] = &[
            0, 0, // int16 version
            0, 0, 0, 1, // int32 array length
            0, 2, b'a', b'b', // int16 length + topic
            0xff, 0xff, 0xff, 0xff, // user data: null (-1)
        ];
        assert_eq!(&sub(&["ab"]).encode()[..], expected);
        assert_eq!(Subscription::decode(expected).unwrap(), sub(&["ab"]));
    }

    #[test]
    fn assignment_matches_the_bytes_of_the_kafka_spec() {
        // version 0 | [("t", [0, 2])] | user_data: 1 byte 0x07
        let expected: &[u8] = &[
            0, 0, // int16 version
            0, 0, 0, 1, // int32 topic count
            0, 1, b't', // topic
            0, 0, 0, 2, // int32 partition count
            0, 0, 0, 0, // partition 0
            0, 0, 0, 2, // partition 2
            0, 0, 0, 1, 7, // user data
        ];
        let a = Assignment {
            partitions: vec![("t".into(), vec![0, 2])],
            user_data: Some(Bytes::from_static(&[7])),
        };
        assert_eq!(&a.encode()[..], expected);
        assert_eq!(Assignment::decode(expected).unwrap(), a);
    }

    #[test]
    fn both_formats_round_trip() {
        let s = Subscription {
            topics: vec!["a".into(), "topic-b".into()],
            user_data: Some(Bytes::from_static(b"xyz")),
        };
        assert_eq!(Subscription::decode(&s.encode()).unwrap(), s);
        let a = Assignment {
            partitions: vec![("a".into(), vec![3, 1]), ("b".into(), vec![])],
            user_data: None,
        };
        assert_eq!(Assignment::decode(&a.encode()).unwrap(), a);
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
    }

    #[test]
    fn newer_versions_decode_by_their_version_zero_fields() {
        // A version-1 subscription appends owned partitions after the user data.
        let mut v1 = sub(&["t"]).encode().to_vec();
        v1[1] = 1;
        v1.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Subscription::decode(&v1).unwrap(), sub(&["t"]));
    }

    #[test]
    fn truncated_or_hostile_input_is_an_error() {
        let bytes = sub(&["topic"]).encode();
        for n in 1..bytes.len() {
            assert!(Subscription::decode(&bytes[..n]).is_err(), "{n} bytes");
        }
        assert!(Assignment::decode(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(Subscription::decode(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn range_gives_each_member_a_consecutive_share_and_the_first_ones_the_rest() {
        let members = vec![
            ("m-b".to_string(), sub(&["t"])),
            ("m-a".to_string(), sub(&["t", "u"])),
            ("m-c".to_string(), sub(&["t"])),
        ];
        let topics = BTreeMap::from([
            ("t".to_string(), vec![4, 0, 6, 1, 5, 2, 3]),
            ("u".to_string(), vec![0, 1]),
        ]);
        let a = range_assign(&members, &topics);
        assert_eq!(a["m-a"].of_topic("t"), vec![0, 1, 2]);
        assert_eq!(a["m-b"].of_topic("t"), vec![3, 4]);
        assert_eq!(a["m-c"].of_topic("t"), vec![5, 6]);
        assert_eq!(a["m-a"].of_topic("u"), vec![0, 1]);
        assert!(a["m-b"].of_topic("u").is_empty());
    }

    #[test]
    fn range_leaves_members_beyond_the_partition_count_empty() {
        let members: Vec<_> = (0..3).map(|i| (format!("m{i}"), sub(&["t"]))).collect();
        let a = range_assign(&members, &BTreeMap::from([("t".to_string(), vec![0, 1])]));
        assert_eq!(a.len(), 3);
        assert_eq!(a["m0"].of_topic("t"), vec![0]);
        assert_eq!(a["m1"].of_topic("t"), vec![1]);
        assert_eq!(a["m2"], Assignment::default());
    }
}
