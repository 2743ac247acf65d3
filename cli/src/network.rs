//! `layer-cake network`: the live directory tree.
//!
//! [`open`] starts the CLI's own process directory with the node at
//! `--directory-at` (host-cake by default) as its parent, the way every
//! process has one; it connects up on the first inspection, so the CLI
//! shows in the tree as `[PROCESS] layer-cake` under that node. [`walk`]
//! asks it [`Climb`]: the climb goes up the tree to the widest node it can
//! reach (the LAN's root, or no wider than `--open-scope`), which answers
//! with its [`DirectoryListing`]; then the same climb with the path to each
//! child the listing names (where the child connects from), recursively,
//! each with a deadline, so a node that does not answer shows as
//! `(no answer)` instead of hanging the command. The nodes pass each
//! inspection up and down the tree themselves: the CLI never holds an
//! address of another node. What it reads is bounded: [`MAX_DEPTH`] levels
//! and [`MAX_NODES`] nodes. [`render`] prints the result in the original
//! library's shape:
//!
//! ```text
//! [LAN] lan-cake (0b9d6c1f)
//! +   [HOST] host-cake (8671e9e9)
//! +   +   [GROUP] group-cake (62492d52)
//! +   +   +   [PROCESS] test_worker_10 (be7093b0)
//! +   +   [PROCESS] layer-cake (d9247350)
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use layer_cake::directory::{Climb, DirectoryListing, NodeOptions, Scope, spawn_node};
use layer_cake::net::{HostPort, LanKey, LinkOptions};
use layer_cake::runtime::AskError;
use layer_cake::{Address, Context};
use uuid::Uuid;

/// How long a node gets to answer (and the first connection to be made)
/// unless told otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// What the first inspection gets besides the deadline: on its way up each
/// node may connect to its parent first (up to 3 s each).
pub const CLIMB_GRACE: Duration = Duration::from_secs(8);

/// The deepest tree walked; deeper nodes are not asked (a guard against a
/// misconfigured loop, far beyond process → group → host → LAN).
pub const MAX_DEPTH: usize = 16;

/// The most nodes walked; the children of a node past that are counted,
/// not asked.
pub const MAX_NODES: usize = 1024;

/// Where a walk starts.
#[derive(Debug, Clone)]
pub struct Top {
    /// The CLI's own process directory.
    pub node: Address,
    /// The widest level the inspections climb to.
    pub up_to: Scope,
}

/// One node of the walked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The path to it from the top (empty: the top itself), as
    /// [`Climb::below`] takes it.
    pub path: Vec<HostPort>,
    /// Its answer; `None` when it gave none in time.
    pub listing: Option<DirectoryListing>,
    /// Its children, wider levels first, then by program name and id;
    /// those that did not answer last.
    pub children: Vec<NodeView>,
    /// How many of its children were not asked: the walk had reached
    /// [`MAX_NODES`] or [`MAX_DEPTH`].
    pub not_walked: usize,
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

/// Starts the CLI's own process directory with the node at `at` as its
/// parent. A node on this host is trusted when it runs as this user or
/// root, or as a member of `allowed_group`; one on another host needs the
/// LAN key (from $LAYER_CAKE_LAN_KEY or the default place).
pub fn open(at: &HostPort, allowed_group: Option<u32>) -> Address {
    let link = LinkOptions {
        lan_key: LanKey::find(None).unwrap_or_else(|e| {
            eprintln!("layer-cake: {e}");
            None
        }),
        ..LinkOptions::default()
    }
    .allow_group(allowed_group);
    let options = NodeOptions::new(Scope::Process)
        .parent(at.clone())
        .link(link);
    spawn_node(options, Address::NULL)
}

/// Asks the node at `below` under the top (the top itself when empty) to
/// describe itself, climbing from `top` first.
pub async fn inspect(
    cx: &mut Context,
    top: &Top,
    below: &[HostPort],
    deadline: Duration,
) -> Result<DirectoryListing, String> {
    let climb = Climb {
        up_to: top.up_to,
        below: below.to_vec(),
        climbed: 0,
    };
    match cx
        .ask::<DirectoryListing, _>(climb, &top.node, deadline)
        .await
    {
        Ok(listing) => Ok(listing),
        Err(AskError::TimedOut) => Err("no answer".into()),
        Err(other) => Err(other.into_fault().to_string()),
    }
}

/// Walks the tree from the top: asks it, then each of its children,
/// recursively. The first ask has `deadline` plus [`CLIMB_GRACE`] and its
/// failure is the walk's; every other has `deadline`, and a node that
/// misses it is kept with no listing (and nothing below it).
pub async fn walk(cx: &mut Context, top: &Top, deadline: Duration) -> Result<NodeView, String> {
    let first = inspect(cx, top, &[], deadline + CLIMB_GRACE).await?;
    let mut state = WalkState {
        seen: HashSet::new(),
        asked: 1,
    };
    Ok(walk_from(cx, top, Vec::new(), Some(first), deadline, &mut state).await)
}

/// What a walk has done so far.
struct WalkState {
    /// The nodes that answered, by id: each is walked below once.
    seen: HashSet<Uuid>,
    /// How many nodes were asked.
    asked: usize,
}

fn walk_from<'a>(
    cx: &'a mut Context,
    top: &'a Top,
    path: Vec<HostPort>,
    answered: Option<DirectoryListing>,
    deadline: Duration,
    state: &'a mut WalkState,
) -> Pin<Box<dyn Future<Output = NodeView> + 'a>> {
    Box::pin(async move {
        let listing = match answered {
            Some(listing) => Some(listing),
            None => inspect(cx, top, &path, deadline).await.ok(),
        };
        let mut children = Vec::new();
        let mut not_walked = 0;
        if let Some(listing) = &listing
            && state.seen.insert(listing.id)
        {
            for child in &listing.children {
                if path.len() >= MAX_DEPTH || state.asked >= MAX_NODES {
                    not_walked += 1;
                    continue;
                }
                state.asked += 1;
                let mut below = path.clone();
                below.push(child.clone());
                children.push(walk_from(cx, top, below, None, deadline, state).await);
            }
        }
        children.sort_by_key(order);
        NodeView {
            path,
            listing,
            children,
            not_walked,
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
    /// `<> "name" (subscription -> publication)` for every match a node
    /// holds: the routes it offered.
    pub routed: bool,
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

/// A name, pattern or program as a peer sent it, with control characters
/// escaped so that a node cannot write to the terminal.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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
        clean(&l.executable),
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
                "{inner}# \"{}\" [{scope}] ({}) {}\n",
                clean(name),
                ident(id, full),
                or_not_set(at.as_ref())
            ));
        }
    }
    if show.subscribed {
        for (pattern, scope, id) in &l.subscribed {
            out.push_str(&format!(
                "{inner}? \"{}\" [{scope}] ({})\n",
                clean(pattern),
                ident(id, full)
            ));
        }
    }
    if show.routed {
        for (name, subscription, publication) in &l.routed {
            out.push_str(&format!(
                "{inner}<> \"{}\" ({} -> {})\n",
                clean(name),
                ident(subscription, full),
                ident(publication, full)
            ));
        }
    }
    if show.connected {
        for (name, scope, publication, peer) in &l.connected {
            let to = match peer {
                Some(at) => at.to_string(),
                None => format!("({}) in this process", ident(publication, full)),
            };
            out.push_str(&format!("{inner}> \"{}\"[{scope}] -> {to}\n", clean(name)));
        }
    }
    if l.omitted > 0 {
        out.push_str(&format!(
            "{inner}({} more entries the node left out)\n",
            l.omitted
        ));
    }
    for child in &node.children {
        render_node(child, show, depth + 1, out);
    }
    if node.not_walked > 0 {
        out.push_str(&format!(
            "{inner}({} more directories not walked)\n",
            node.not_walked
        ));
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
            routed: Vec::new(),
            children: Vec::new(),
            omitted: 0,
            refused: Vec::new(),
        }
    }

    fn view(listing: Option<DirectoryListing>, children: Vec<NodeView>) -> NodeView {
        NodeView {
            path: Vec::new(),
            listing,
            children,
            not_walked: 0,
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
        worker.routed.push((
            "w:1".into(),
            Uuid::from_u128(0x12345678_u128 << 96),
            Uuid::from_u128(0xabcdef01_u128 << 96),
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
            routed: true,
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
        assert!(text.contains("+   +   +   <> \"w:1\" (12345678 -> abcdef01)\n"));
        // Routes only when asked.
        assert!(!render(&tree, &Show::default()).contains("<>"));
    }

    #[test]
    fn what_was_left_out_is_said_and_control_characters_are_escaped() {
        let mut host = listing(Scope::Host, "host\u{1b}[2J", 0x8671e9e9_u128 << 96);
        host.omitted = 3;
        host.published.push((
            "a\nb".into(),
            Scope::Host,
            Uuid::from_u128(0xabcdef01_u128 << 96),
            None,
        ));
        let mut tree = view(Some(host), vec![]);
        tree.not_walked = 2;
        let show = Show {
            published: true,
            ..Show::default()
        };
        assert_eq!(
            render(&tree, &show),
            "[HOST] host\\u{1b}[2J (8671e9e9)\n\
             +   # \"a\\nb\" [HOST] (abcdef01) (not set)\n\
             +   (3 more entries the node left out)\n\
             +   (2 more directories not walked)\n"
        );
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
