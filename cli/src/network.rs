//! `layer-cake network`: the live directory tree.
//!
//! [`connect`] opens a native connection to a directory node (host-cake by
//! default); its proxy is the node itself. [`walk`] asks it [`Inspect`],
//! then [`Inspect`] with the path to each child the [`DirectoryListing`]
//! names (where the child connects from), recursively, each with a
//! deadline, so a node that does not answer shows as `(no answer)` instead
//! of hanging the command. The node passes each inspection down the tree
//! itself: the CLI never holds an address of a node below the first. [`render`] prints the
//! result in the original library's shape:
//!
//! ```text
//! [HOST] host-cake (8671e9e9)
//! +   [GROUP] group-cake (62492d52)
//! +   +   [PROCESS] test_worker_10 (be7093b0)
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use layer_cake::directory::{DirectoryListing, Inspect, Scope};
use layer_cake::net::{ConnectOptions, Connected, HostPort, LanKey, LinkOptions, NotConnected};
use layer_cake::runtime::AskError;
use layer_cake::{Address, Context};
use uuid::Uuid;

/// How long a node gets to answer an `Inspect` (and the first connection
/// to be made) unless told otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// The deepest tree walked; deeper nodes are not asked (a guard against a
/// misconfigured loop, far beyond process → group → host → LAN).
const MAX_DEPTH: usize = 16;

/// One node of the walked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The path to it from the first node (empty: the first node itself),
    /// as [`Inspect::below`] takes it.
    pub path: Vec<HostPort>,
    /// Its answer; `None` when it gave none in time.
    pub listing: Option<DirectoryListing>,
    /// Its children, wider levels first, then by program name and id;
    /// those that did not answer last.
    pub children: Vec<NodeView>,
}

impl NodeView {
    /// This node and every node below it, depth first, parents first.
    pub fn iter(&self) -> impl Iterator<Item = &NodeView> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let node = stack.pop()?;
            stack.extend(node.children.iter().rev());
            Some(node)
        })
    }
}

/// Connects to the directory node listening at `at`; the answer is the
/// address of that node (the connection's proxy). A node on this host is
/// trusted when it runs as this user or root, or as a member of
/// `allowed_group`. Fails with a sentence saying why.
pub async fn connect(
    cx: &mut Context,
    at: &HostPort,
    deadline: Duration,
    allowed_group: Option<u32>,
) -> Result<Address, String> {
    // A directory on another host needs the LAN key (from
    // $LAYER_CAKE_LAN_KEY or the default place).
    let link = LinkOptions {
        lan_key: LanKey::find(None).unwrap_or_else(|e| {
            eprintln!("layer-cake: {e}");
            None
        }),
        ..LinkOptions::default()
    }
    .allow_group(allowed_group);
    cx.connect(
        at.clone(),
        ConnectOptions::native().link(link).timeout(deadline),
    );
    // The connect has its own timeout; this one only guards against an
    // answer that never comes.
    let patience = deadline + Duration::from_secs(2);
    let wait = async {
        loop {
            let message = cx.input().await;
            if let Some(c) = message.downcast_ref::<Connected>()
                && c.requested == *at
            {
                return Ok(c.proxy.clone());
            }
            if let Some(n) = message.downcast_ref::<NotConnected>()
                && n.requested == *at
            {
                return Err(format!("cannot reach the directory at {at}: {}", n.reason));
            }
        }
    };
    tokio::time::timeout(patience, wait)
        .await
        .unwrap_or_else(|_| Err(format!("cannot reach the directory at {at}: no answer")))
}

/// Asks the node at `below` under `root` (`root` itself when empty) to
/// describe itself.
pub async fn inspect(
    cx: &mut Context,
    root: &Address,
    below: &[HostPort],
    deadline: Duration,
) -> Result<DirectoryListing, String> {
    let inspect = Inspect {
        below: below.to_vec(),
    };
    match cx.ask::<DirectoryListing, _>(inspect, root, deadline).await {
        Ok(listing) => Ok(listing),
        Err(AskError::TimedOut) => Err("no answer".into()),
        Err(other) => Err(other.into_fault().to_string()),
    }
}

/// Walks the tree below `root`: asks it [`Inspect`], then each of its
/// children, recursively. Every ask has `deadline`; a node that misses it is
/// kept with no listing (and nothing below it).
pub async fn walk(cx: &mut Context, root: Address, deadline: Duration) -> NodeView {
    let mut seen = HashSet::new();
    walk_from(cx, &root, Vec::new(), deadline, &mut seen).await
}

fn walk_from<'a>(
    cx: &'a mut Context,
    root: &'a Address,
    path: Vec<HostPort>,
    deadline: Duration,
    seen: &'a mut HashSet<Uuid>,
) -> Pin<Box<dyn Future<Output = NodeView> + 'a>> {
    Box::pin(async move {
        let listing = inspect(cx, root, &path, deadline).await.ok();
        let mut children = Vec::new();
        if let Some(listing) = &listing
            && seen.insert(listing.id)
            && path.len() < MAX_DEPTH
        {
            for child in &listing.children {
                let mut below = path.clone();
                below.push(child.clone());
                children.push(walk_from(cx, root, below, deadline, seen).await);
            }
        }
        children.sort_by_key(order);
        NodeView {
            path,
            listing,
            children,
        }
    })
}

/// The order of siblings: answered before silent, wider levels first, then
/// by program and id.
fn order(node: &NodeView) -> (bool, std::cmp::Reverse<Scope>, String, Uuid) {
    match &node.listing {
        Some(l) => (
            false,
            std::cmp::Reverse(l.level),
            l.executable.clone(),
            l.id,
        ),
        None => (
            true,
            std::cmp::Reverse(Scope::Process),
            String::new(),
            Uuid::nil(),
        ),
    }
}

/// What [`render`] shows besides one line per node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Show {
    /// `# "name" [SCOPE] (id) host:port` for every publication a node holds.
    pub published: bool,
    /// `? "pattern" [SCOPE] (id)` for every subscription a node holds.
    pub subscribed: bool,
    /// `> "name"[SCOPE] -> host:port` for every open session of a node's
    /// subscribers.
    pub connected: bool,
    /// `<C>parent <L>accepting` after each node.
    pub addresses: bool,
    /// Whole uuids rather than their first 8 hex digits.
    pub full_identity: bool,
}

/// An id as shown: the first 8 hex digits, or all of it.
pub fn ident(id: &Uuid, full: bool) -> String {
    if full {
        id.to_string()
    } else {
        id.simple().to_string()[..8].to_owned()
    }
}

fn or_not_set(at: Option<&HostPort>) -> String {
    at.map_or_else(|| "(not set)".to_owned(), HostPort::to_string)
}

/// The tree as text, one line per node (children indented with `+   ` per
/// level), each followed by what `show` asks for, indented one level more.
pub fn render(root: &NodeView, show: &Show) -> String {
    let mut out = String::new();
    render_node(root, show, 0, &mut out);
    out
}

fn render_node(node: &NodeView, show: &Show, depth: usize, out: &mut String) {
    let indent = "+   ".repeat(depth);
    let Some(l) = &node.listing else {
        out.push_str(&format!("{indent}(no answer)\n"));
        return;
    };
    let full = show.full_identity;
    out.push_str(&format!(
        "{indent}[{}] {} ({})",
        l.level,
        l.executable,
        ident(&l.id, full)
    ));
    if show.addresses {
        out.push_str(&format!(" <C>{}", or_not_set(l.parent.as_ref())));
        if l.parent.is_some() && !l.parent_connected {
            out.push_str(" (not connected)");
        }
        out.push_str(&format!(" <L>{}", or_not_set(l.accepting.as_ref())));
    }
    out.push('\n');
    let inner = "+   ".repeat(depth + 1);
    if show.published {
        for (name, scope, id, at) in &l.published {
            out.push_str(&format!(
                "{inner}# \"{name}\" [{scope}] ({}) {}\n",
                ident(id, full),
                or_not_set(at.as_ref())
            ));
        }
    }
    if show.subscribed {
        for (pattern, scope, id) in &l.subscribed {
            out.push_str(&format!(
                "{inner}? \"{pattern}\" [{scope}] ({})\n",
                ident(id, full)
            ));
        }
    }
    if show.connected {
        for (name, scope, publication, peer) in &l.connected {
            let to = match peer {
                Some(at) => at.to_string(),
                None => format!("({}) in this process", ident(publication, full)),
            };
            out.push_str(&format!("{inner}> \"{name}\"[{scope}] -> {to}\n"));
        }
    }
    for child in &node.children {
        render_node(child, show, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(level: Scope, executable: &str, id: u128) -> DirectoryListing {
        DirectoryListing {
            id: Uuid::from_u128(id),
            level,
            executable: executable.into(),
            accepting: None,
            parent: None,
            parent_connected: false,
            published: Vec::new(),
            subscribed: Vec::new(),
            connected: Vec::new(),
            children: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn view(listing: Option<DirectoryListing>, children: Vec<NodeView>) -> NodeView {
        NodeView {
            path: Vec::new(),
            listing,
            children,
        }
    }

    #[test]
    fn a_tree_prints_one_indented_line_per_node() {
        let mut host = listing(Scope::Host, "host-cake", 0x8671e9e9_u128 << 96);
        host.accepting = Some(HostPort::new("127.0.0.1", 54195));
        let mut group = listing(Scope::Group, "group-cake", 0x62492d52_u128 << 96);
        group.parent = Some(HostPort::new("127.0.0.1", 54195));
        group.parent_connected = true;
        group.accepting = Some(HostPort::new("127.0.0.1", 44991));
        let mut worker = listing(Scope::Process, "test_worker_10", 0xbe7093b0_u128 << 96);
        worker.published.push((
            "w:1".into(),
            Scope::Host,
            Uuid::from_u128(0xabcdef01_u128 << 96),
            Some(HostPort::new("127.0.0.1", 42009)),
        ));
        worker
            .subscribed
            .push(("w:.*".into(), Scope::Group, Uuid::from_u128(7)));
        worker.connected.push((
            "w:1".into(),
            Scope::Group,
            Uuid::from_u128(1),
            Some(HostPort::new("127.0.0.1", 42009)),
        ));
        let tree = view(
            Some(host),
            vec![view(
                Some(group),
                vec![view(Some(worker), vec![]), view(None, vec![])],
            )],
        );
        assert_eq!(
            render(&tree, &Show::default()),
            "[HOST] host-cake (8671e9e9)\n\
             +   [GROUP] group-cake (62492d52)\n\
             +   +   [PROCESS] test_worker_10 (be7093b0)\n\
             +   +   (no answer)\n"
        );
        let all = Show {
            published: true,
            subscribed: true,
            connected: true,
            addresses: true,
            full_identity: false,
        };
        let text = render(&tree, &all);
        assert!(
            text.starts_with("[HOST] host-cake (8671e9e9) <C>(not set) <L>127.0.0.1:54195\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "+   [GROUP] group-cake (62492d52) <C>127.0.0.1:54195 <L>127.0.0.1:44991\n"
            )
        );
        assert!(text.contains("+   +   +   # \"w:1\" [HOST] (abcdef01) 127.0.0.1:42009\n"));
        assert!(text.contains("+   +   +   ? \"w:.*\" [GROUP] (00000000)\n"));
        assert!(text.contains("+   +   +   > \"w:1\"[GROUP] -> 127.0.0.1:42009\n"));
    }

    #[test]
    fn full_identity_prints_whole_uuids() {
        let id = Uuid::new_v4();
        let tree = view(
            Some(listing(Scope::Host, "host-cake", id.as_u128())),
            vec![],
        );
        let show = Show {
            full_identity: true,
            ..Show::default()
        };
        assert_eq!(render(&tree, &show), format!("[HOST] host-cake ({id})\n"));
    }

    #[test]
    fn siblings_are_ordered_wider_first_and_silent_last() {
        let tree = view(Some(listing(Scope::Host, "host-cake", 1)), vec![]);
        let mut children = [
            view(None, vec![]),
            view(Some(listing(Scope::Process, "b", 2)), vec![]),
            view(Some(listing(Scope::Group, "z", 3)), vec![]),
            view(Some(listing(Scope::Process, "a", 4)), vec![]),
        ];
        children.sort_by_key(order);
        let names: Vec<_> = children
            .iter()
            .map(|c| c.listing.as_ref().map(|l| l.executable.clone()))
            .collect();
        assert_eq!(
            names,
            [Some("z".into()), Some("a".into()), Some("b".into()), None]
        );
        assert_eq!(tree.iter().count(), 1);
    }
}
