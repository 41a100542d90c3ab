//! `riffle cluster info`: the cluster id, the controller and the brokers, from
//! DescribeCluster or Metadata (the Raft quorum's view comes with the controller quorum).

use clap::Subcommand;
use serde_json::json;

use crate::output::{self, Table};
use crate::{CliError, CommonArgs};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller and the brokers.
    Info {
        #[command(flatten)]
        common: CommonArgs,
    },
}

pub(crate) fn run(command: ClusterCommand) -> Result<(), CliError> {
    let ClusterCommand::Info { common } = command;
    let info = common.connect()?.cluster_info()?;
    if common.json {
        let brokers: Vec<_> = info
            .brokers
            .iter()
            .map(
                |b| json!({ "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack }),
            )
            .collect();
        return output::json(&json!({
            "cluster_id": info.cluster_id,
            "controller_id": info.controller_id,
            "brokers": brokers,
        }));
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
    table.print()
}
