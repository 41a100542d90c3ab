//! The controller quorum's settings as `riffle serve` takes them: the node's roles
//! (`--roles broker,controller`) and the voters (`--controller-quorum 1@HOST:PORT,...`, Kafka's
//! `controller.quorum.voters`). Parsed once at start-up; invalid text is refused with the
//! setting's name.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use serde::Deserialize;

/// Most voters a quorum may name: Raft quorums are 1, 3 or 5 nodes; 7 is already rare.
pub const QUORUM_VOTERS_MAX: usize = 7;

/// What a node runs: the broker (Kafka listener, partitions), the controller (a voter of the
/// metadata quorum), or both (Kafka's `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Default for Roles {
    /// Combined: the default single-node start is a combined node (DESIGN.md).
    fn default() -> Self {
        Roles {
            broker: true,
            controller: true,
        }
    }
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(text: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in text.split(',').map(str::trim) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => {
                    return Err(format!(
                        "roles: unknown role '{other}' (expected broker, controller or both, \
                         comma-separated)"
                    ))
                }
            }
        }
        Ok(roles)
    }
}

impl TryFrom<String> for Roles {
    type Error = String;

    fn try_from(text: String) -> Result<Roles, String> {
        text.parse()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => write!(f, "broker,controller"),
            (true, false) => write!(f, "broker"),
            (false, true) => write!(f, "controller"),
            (false, false) => write!(f, "none"),
        }
    }
}

/// One voter of the quorum: its node id and the address of its controller listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub node_id: u64,
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// `HOST:PORT`, as a connection is made to it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The first socket address the host resolves to (blocking: start-up only).
    pub fn resolve(&self) -> anyhow::Result<SocketAddr> {
        let address = self.address();
        address
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("controller_quorum: cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("controller_quorum: {address} resolves to nothing"))
    }
}

/// The voters, `ID@HOST:PORT` comma-separated, ids unique and nonzero.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ControllerQuorum {
    pub voters: Vec<QuorumVoter>,
}

impl ControllerQuorum {
    pub fn voter(&self, node_id: u64) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.node_id == node_id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.voters.iter().map(|v| v.node_id).collect()
    }
}

impl FromStr for ControllerQuorum {
    type Err = String;

    fn from_str(text: &str) -> Result<ControllerQuorum, String> {
        let mut voters: Vec<QuorumVoter> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let voter = parse_voter(entry)?;
            if voters.iter().any(|v| v.node_id == voter.node_id) {
                return Err(format!(
                    "controller_quorum: node id {} is named twice",
                    voter.node_id
                ));
            }
            voters.push(voter);
        }
        if voters.is_empty() {
            return Err("controller_quorum: no voter given (expected ID@HOST:PORT,...)".into());
        }
        if voters.len() > QUORUM_VOTERS_MAX {
            return Err(format!(
                "controller_quorum: {} voters, at most {QUORUM_VOTERS_MAX}",
                voters.len()
            ));
        }
        Ok(ControllerQuorum { voters })
    }
}

fn parse_voter(entry: &str) -> Result<QuorumVoter, String> {
    let bad = || format!("controller_quorum: '{entry}' is not ID@HOST:PORT");
    let (id, address) = entry.split_once('@').ok_or_else(bad)?;
    let node_id: u64 = id.trim().parse().map_err(|_| bad())?;
    if node_id == 0 || node_id > i32::MAX as u64 {
        return Err(format!(
            "controller_quorum: node id {node_id} in '{entry}' must be between 1 and {}",
            i32::MAX
        ));
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(QuorumVoter {
        node_id,
        host: host.to_string(),
        port,
    })
}

impl TryFrom<String> for ControllerQuorum {
    type Error = String;

    fn try_from(text: String) -> Result<ControllerQuorum, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_each_combination_and_refuse_unknown_ones() {
        assert_eq!("broker,controller".parse::<Roles>(), Ok(Roles::default()));
        assert_eq!("controller, broker".parse::<Roles>(), Ok(Roles::default()));
        let broker: Roles = "broker".parse().unwrap();
        assert!(broker.broker && !broker.controller);
        assert_eq!(broker.to_string(), "broker");
        let controller: Roles = "controller".parse().unwrap();
        assert!(!controller.broker && controller.controller);
        let err = "broker,zookeeper".parse::<Roles>().unwrap_err();
        assert!(err.contains("zookeeper"), "{err}");
    }

    #[test]
    fn quorum_parses_voters_and_refuses_bad_entries() {
        let quorum: ControllerQuorum = "1@127.0.0.1:9093, 2@localhost:9094,3@[::1]:9095"
            .parse()
            .unwrap();
        assert_eq!(quorum.ids(), vec![1, 2, 3]);
        assert_eq!(quorum.voter(2).unwrap().address(), "localhost:9094");
        assert_eq!(quorum.voter(3).unwrap().address(), "[::1]:9095");
        for bad in [
            "",
            "1@host",
            "x@host:1",
            "0@host:1",
            "1@:1",
            "1@host:0",
            "1@a:1,1@b:2",
            "1@h:1,2@h:2,3@h:3,4@h:4,5@h:5,6@h:6,7@h:7,8@h:8",
        ] {
            assert!(bad.parse::<ControllerQuorum>().is_err(), "{bad}");
        }
    }
}
