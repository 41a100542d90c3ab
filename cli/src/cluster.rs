//! `riffle cluster info`: the cluster id, the controller and the brokers, from
//! DescribeCluster or Metadata; with `--admin HOST:PORT`, also the Raft quorum (leader, term,
//! voters and their lag, broker-only observers) from that broker's admin listener
//! (`/v1/cluster`).

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::output::{self, Table};
use crate::{admin_http, CliError, CommonArgs};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller and the brokers (and the quorum with --admin).
    Info {
        #[command(flatten)]
        common: CommonArgs,
        /// A broker's admin listener: adds the controller quorum as that node sees it.
        #[arg(long, value_name = "HOST:PORT", env = "RIFFLE_ADMIN")]
        admin: Option<String>,
    },
}

pub(crate) fn run(command: ClusterCommand) -> Result<(), CliError> {
    let ClusterCommand::Info { common, admin } = command;
    let info = common.connect()?.cluster_info()?;
    let quorum = match &admin {
        Some(addr) => {
            let timeout = Duration::from_millis(common.timeout_ms.max(1));
            let cluster = admin_http::get_json(addr, "/v1/cluster", timeout)?;
            Some(cluster.get("quorum").cloned().unwrap_or(Value::Null))
        }
        None => None,
    };
    if common.json {
        let brokers: Vec<_> = info
            .brokers
            .iter()
            .map(
                |b| json!({ "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack }),
            )
            .collect();
        let mut document = json!({
            "cluster_id": info.cluster_id,
            "controller_id": info.controller_id,
            "brokers": brokers,
        });
        if let Some(quorum) = quorum {
            document["quorum"] = quorum;
        }
        return output::json(&document);
    }
    output::line(&format!(
        "cluster id: {}",
        info.cluster_id.as_deref().unwrap_or("-")
    ))?;
    let controller = if info.controller_id >= 0 {
        info.controller_id.to_string()
    } else {
        "none".into()
    };
    output::line(&format!("controller: {controller}\n"))?;
    let mut table = Table::new(&["ID", "HOST", "PORT", "RACK"]);
    for b in info.brokers {
        let id = if b.node_id == info.controller_id {
            format!("{}*", b.node_id)
        } else {
            b.node_id.to_string()
        };
        table.row(vec![
            id,
            b.host,
            b.port.to_string(),
            b.rack.unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print()?;
    match quorum {
        Some(Value::Null) => {
            output::line("\nquorum: none (a single node without controller_quorum)")
        }
        Some(quorum) => print_quorum(&quorum),
        None => Ok(()),
    }
}

/// The quorum section: leader and term, then one row per voter (lag known on the leader).
fn print_quorum(quorum: &Value) -> Result<(), CliError> {
    let number = |v: &Value| {
        v.as_u64()
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    };
    let leader = quorum["leader_id"].as_u64();
    output::line(&format!(
        "\nquorum (as node {} sees it): leader {}, term {}, commit index {}",
        number(&quorum["node_id"]),
        leader.map_or_else(|| "none (election)".to_string(), |id| id.to_string()),
        number(&quorum["term"]),
        number(&quorum["commit_index"]),
    ))?;
    let mut table = Table::new(&["VOTER", "ADDRESS", "MATCHED", "LAG"]);
    for voter in quorum["voters"].as_array().into_iter().flatten() {
        let id = voter["node_id"].as_u64();
        let mut name = number(&voter["node_id"]);
        if id.is_some() && id == leader {
            name.push('*');
        }
        table.row(vec![
            name,
            voter["address"].as_str().unwrap_or("-").to_string(),
            number(&voter["matched_index"]),
            number(&voter["lag"]),
        ]);
    }
    table.print()?;
    let observers = quorum["observers"].as_array().cloned().unwrap_or_default();
    if !observers.is_empty() {
        output::line("\nobservers (broker-only nodes following the log):")?;
        let mut table = Table::new(&["NODE", "APPLIED", "LAG"]);
        for observer in observers {
            table.row(vec![
                number(&observer["node_id"]),
                number(&observer["applied_index"]),
                number(&observer["lag"]),
            ]);
        }
        table.print()?;
    }
    let brokers = quorum["brokers"].as_array().cloned().unwrap_or_default();
    if brokers.is_empty() {
        return Ok(());
    }
    output::line("\nregistered brokers:")?;
    let mut table = Table::new(&["ID", "HOST", "PORT", "EPOCH", "STATE"]);
    for broker in brokers {
        let state = if broker["fenced"].as_bool() == Some(true) {
            "fenced"
        } else {
            "active"
        };
        table.row(vec![
            broker["broker_id"].to_string(),
            broker["host"].as_str().unwrap_or("-").to_string(),
            number(&broker["port"]),
            number(&broker["broker_epoch"]),
            state.to_string(),
        ]);
    }
    table.print()
}
