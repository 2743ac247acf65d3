//! `layer-cake ping`: round trips to one directory node.
//!
//! The node is found by a prefix of its id in the walked tree
//! ([`find`]); [`ping`] then asks it a number of times, one a second (the
//! first at once), and prints each round trip. The asks travel the same way
//! as the walk's: from the CLI's own directory up to the top (the same
//! [`Climb`] as `network`, `--open-scope` included) and down the tree node
//! by node, so a ping measures the directory path rather than a direct
//! connection.

use std::io::Write;
use std::time::Duration;

use layer_cake::Context;
use layer_cake::directory::{Climb, DirectoryListing};
use layer_cake::net::HostPort;
use layer_cake::runtime::AskError;
use uuid::Uuid;

use crate::network::{NodeView, Top};

/// How long one round trip may take before it counts as lost.
pub const PING_DEADLINE: Duration = Duration::from_secs(3);

/// The time between the starts of two pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// The nodes in `tree` whose id starts with `prefix` (hex digits, case and
/// dashes ignored): their ids and paths from the first node. A prefix that
/// is empty or not hex is an error.
pub fn find(tree: &NodeView, prefix: &str) -> Result<Vec<(Uuid, Vec<HostPort>)>, String> {
    let wanted: String = prefix
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{prefix:?} is not the start of a node id (hex digits, as `layer-cake network` shows them)"
        ));
    }
    Ok(tree
        .iter()
        .filter_map(|n| n.listing.as_ref().map(|l| (l.id, n.path.clone())))
        .filter(|(id, _)| id.simple().to_string().starts_with(&wanted))
        .collect())
}

/// Pings the node at `path` under the top `count` times, printing
/// `[i] 0.000412s` per round trip or `[i] (timed out)`; the answer is how
/// many came back.
pub async fn ping(
    cx: &mut Context,
    top: &Top,
    path: &[HostPort],
    count: u32,
    out: &mut dyn Write,
) -> std::io::Result<u32> {
    let start = tokio::time::Instant::now();
    let mut answered = 0;
    for i in 1..=count {
        tokio::time::sleep_until(start + PING_INTERVAL * (i - 1)).await;
        let sent = tokio::time::Instant::now();
        let climb = Climb {
            up_to: top.up_to,
            below: path.to_vec(),
            climbed: 0,
        };
        let line = match cx
            .ask::<DirectoryListing, _>(climb, &top.node, PING_DEADLINE)
            .await
        {
            Ok(_) => {
                answered += 1;
                format!("{:.6}s", sent.elapsed().as_secs_f64())
            }
            Err(AskError::TimedOut) => "(timed out)".to_owned(),
            Err(other) => format!("(failed: {})", other.into_fault()),
        };
        writeln!(out, "[{i}] {line}")?;
        out.flush()?;
    }
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use layer_cake::directory::Scope;

    fn node(id: &str) -> NodeView {
        NodeView {
            path: Vec::new(),
            listing: Some(DirectoryListing {
                id: id.parse().unwrap(),
                level: Scope::Host,
                executable: "x".into(),
                accepting: None,
                parent: None,
                parent_connected: false,
                published: Vec::new(),
                subscribed: Vec::new(),
                connected: Vec::new(),
                routed: Vec::new(),
                children: Vec::new(),
                omitted: 0,
                refused: Vec::new(),
            }),
            children: Vec::new(),
            not_walked: 0,
        }
    }

    #[test]
    fn a_prefix_finds_nodes_anywhere_in_the_tree() {
        let mut root = node("8671e9e9-0000-4000-8000-000000000001");
        let mut group = node("62492d52-0000-4000-8000-000000000002");
        group
            .children
            .push(node("62490000-0000-4000-8000-000000000003"));
        root.children.push(group);
        root.children.push(NodeView {
            path: Vec::new(),
            listing: None,
            children: Vec::new(),
            not_walked: 0,
        });
        assert_eq!(find(&root, "8671").unwrap().len(), 1);
        assert_eq!(find(&root, "6249").unwrap().len(), 2);
        assert_eq!(find(&root, "62492D").unwrap().len(), 1);
        assert_eq!(find(&root, "62490000-0").unwrap().len(), 1);
        assert!(find(&root, "ffff").unwrap().is_empty());
        assert!(find(&root, "").is_err());
        assert!(find(&root, "xyz").is_err());
    }
}
