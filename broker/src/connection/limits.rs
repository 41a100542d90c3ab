//! Connection admission: `max_connections` for the whole broker and `max_connections_per_ip` per
//! client address (Kafka's settings). One instance serves every shard's accept loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("the broker holds max_connections ({max}) connections")]
    Total { max: usize },
    #[error("{ip} holds max_connections_per_ip ({max}) connections")]
    PerIp { ip: IpAddr, max: usize },
}

/// The broker's connection counts, shared by all shards for the life of the process. A mutex,
/// not atomics, because the total and the per-address count must move together; it is taken
/// once per accept and once per close, never on the request path.
pub(crate) struct ConnectionLimits {
    max_connections: usize,
    max_connections_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it gives its place back.
pub(crate) struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(max_connections: usize, max_connections_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_connections,
            max_connections_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Admits a connection from `ip` if both caps leave room for it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_connections {
            return Err(Refused::Total {
                max: self.max_connections,
            });
        }
        let of_ip = counts.per_ip.entry(ip).or_insert(0);
        if *of_ip >= self.max_connections_per_ip {
            return Err(Refused::PerIp {
                ip,
                max: self.max_connections_per_ip,
            });
        }
        *of_ip += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(counts.total > 0, "a slot is released once");
        counts.total -= 1;
        if let Some(of_ip) = counts.per_ip.get_mut(&ip) {
            *of_ip -= 1;
            if *of_ip == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn per_ip_cap_refuses_one_address_but_not_another() {
        let limits = ConnectionLimits::new(10, 2);
        let _a1 = limits.admit(ip(1)).unwrap();
        let a2 = limits.admit(ip(1)).unwrap();
        assert_eq!(
            limits.admit(ip(1)).err(),
            Some(Refused::PerIp { ip: ip(1), max: 2 })
        );
        assert!(limits.admit(ip(2)).is_ok(), "another address is not capped");
        drop(a2);
        assert!(
            limits.admit(ip(1)).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn total_cap_counts_every_address_and_frees_on_drop() {
        let limits = ConnectionLimits::new(3, 3);
        let slots: Vec<_> = (1..=3).map(|i| limits.admit(ip(i)).unwrap()).collect();
        assert_eq!(limits.admit(ip(4)).err(), Some(Refused::Total { max: 3 }));
        drop(slots);
        let counts = limits.counts.lock().unwrap();
        assert_eq!(counts.total, 0);
        assert!(counts.per_ip.is_empty(), "no address is left behind");
    }
}
