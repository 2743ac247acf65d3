//! The composite process: what `group-cake` does with a home.
//!
//! [`run_group`] starts the GROUP directory node, then every selected role
//! of the home as a child process connected to it, and supervises them:
//!
//! - a role that ends has its return value recorded in its history;
//! - with a retry policy, it is started again after the policy's next delay
//!   (once the policy is exhausted, it stays down);
//! - a role that retired ([`Retired`](crate::process::Retired): after
//!   `--max-requests`, or `layer-cake restart`) is started again at once,
//!   with or without a retry policy, and without using it up;
//! - with a main role, the composite ends when that role ends, with its
//!   value (the others are stopped first);
//! - without one, it runs until it is stopped or every role has ended, and
//!   ends with [`RolesReturned`]: each role's last value;
//! - `Stop` (SIGINT) stops every role — each gets SIGINT — waits for them,
//!   records what they returned, and ends `Aborted`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Home, Role};
use crate::directory::{NodeOptions, Scope, run_node};
use crate::message::codec::json;
use crate::message::{Faulted, Payload, Returned, Stop};
use crate::net::{HostPort, LinkOptions, Listening, NotListening};
use crate::process::{Origin, ProcessOptions};
use crate::runtime::{Address, Context, RetryPolicy};
use crate::{Message, on};

/// How long the roles get to stop.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// What a composite process without a main role returns: each role's last
/// value, by role name.
#[derive(Debug, Serialize, Deserialize, Message)]
pub struct RolesReturned {
    /// Role name → what it returned.
    pub roles: BTreeMap<String, Payload>,
}

/// How to run a home's roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupOptions {
    /// Role name patterns (regular expressions, matched from the start);
    /// empty: every role.
    pub roles: Vec<String>,
    /// The host directory to pass HOST and LAN listings to (default
    /// 127.0.0.1:54195).
    pub directory_at_host: Option<HostPort>,
    /// A LAN directory to use instead of the host's.
    pub directory_at_lan: Option<HostPort>,
    /// Restart roles that end, by this policy.
    pub retry: Option<RetryPolicy>,
    /// The role whose end ends the composite, with its value.
    pub main_role: Option<String>,
    /// Where the group's directory listens for its processes' directories
    /// (`--accept-directories-at`; default 127.0.0.1:0, a free port). Each
    /// role is given it as `--connect-to-directory`.
    pub accept_directories_at: Option<HostPort>,
}

/// The group directory's link settings: the process's `--allow-group` (a
/// standard flag, which the roles inherit as child processes) resolved; an
/// unknown group is a usage error, exit status 2.
pub fn group_link() -> Result<LinkOptions, Faulted> {
    let group = crate::process::config()
        .allowed_group()
        .map_err(|e| Faulted::new(e.to_string()).with_exit_status(2))?;
    Ok(LinkOptions::default().allow_group(group))
}

/// Starts the group's directory node as a child of `cx`; its address for
/// the roles (`--connect-to-directory`).
async fn start_directory(
    cx: &mut Context,
    options: &GroupOptions,
) -> Result<(Address, HostPort), Faulted> {
    let accept_at = options
        .accept_directories_at
        .clone()
        .unwrap_or_else(|| HostPort::new("127.0.0.1", 0));
    let parent = options
        .directory_at_lan
        .clone()
        .or_else(|| options.directory_at_host.clone())
        .unwrap_or_else(crate::directory::lan::directory_at_host);
    let node_options = NodeOptions::new(Scope::Group)
        .accept_at(accept_at)
        .parent(parent)
        .link(group_link()?);
    let me = cx.address().clone();
    let node = cx.spawn(move |node_cx| run_node(node_cx, node_options, me));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::select! {
            message = cx.input() => message,
            () = tokio::time::sleep_until(deadline) => return Err(Faulted::timed_out("the group directory did not start listening")),
        };
        on!(message, {
            Listening as l => return Ok((node, l.listening)),
            NotListening as n => return Err(n.into_fault()),
            Stop as _ => return Err(Faulted::aborted()),
            _other => {},
        })
    }
}

/// A role being supervised.
struct Supervised {
    role: Role,
    /// The proxy of its current process; `None` while it waits to restart.
    proxy: Option<Address>,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

/// Restart the named role now.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RestartRole {
    name: String,
}

impl Message for RestartRole {
    const CONTROL: bool = true;
    fn write_signature(out: &mut String) {
        out.push_str("layer_cake.group.RestartRole");
    }
}

/// Runs the roles of `home` as a composite process (see the module docs).
pub async fn run_group(
    mut cx: Context,
    home: PathBuf,
    options: GroupOptions,
) -> Result<Payload, Faulted> {
    let home = Home::open(&home)
        .map_err(|e| Faulted::new("cannot open the home").with_explanation(e.to_string()))?;
    let roles = home
        .matching(&options.roles)
        .map_err(|e| Faulted::new("cannot read the roles").with_explanation(e.to_string()))?;
    let roles: Vec<Role> = roles.into_iter().filter(|r| !r.is_group()).collect();
    if roles.is_empty() {
        return Err(Faulted::new("no roles to run").with_explanation(
            match options.roles.as_slice() {
                [] => "the home has no roles".to_owned(),
                patterns => format!("none matches {}", patterns.join(" ")),
            },
        ));
    }
    if let Some(main) = &options.main_role
        && !roles.iter().any(|r| r.name() == main)
    {
        return Err(Faulted::new(format!(
            "the main role \"{main}\" is not among the roles to run"
        )));
    }
    let (node, directory) = start_directory(&mut cx, &options).await?;
    eprintln!("group-cake: listening on {directory}");
    tracing::info!(home = %home.path().display(), roles = roles.len(), "Running the roles of the home; the group directory listens at {directory}");

    let mut supervised: HashMap<String, Supervised> = HashMap::new();
    let mut returned: BTreeMap<String, Payload> = BTreeMap::new();
    for role in roles {
        let delays: Box<dyn Iterator<Item = Duration> + Send> = match &options.retry {
            Some(policy) => Box::new(policy.delays()),
            None => Box::new(std::iter::empty()),
        };
        let name = role.name().to_owned();
        let mut entry = Supervised {
            role,
            proxy: None,
            delays,
        };
        start_role(&mut cx, &home, &directory, &mut entry)?;
        supervised.insert(name, entry);
    }

    let result = loop {
        on!(cx.input().await, {
            Returned as r => {
                let from = cx.return_address().clone();
                if from == node {
                    break Err(Faulted::new("the group directory ended"));
                }
                let Some((name, entry)) = supervised.iter_mut().find(|(_, s)| s.proxy.as_ref() == Some(&from)) else {
                    continue;
                };
                let name = name.clone();
                entry.proxy = None;
                record_stop(&entry.role, &r.value);
                eprintln!("group-cake: role {name} ended: {}", describe(&r.value));
                if options.main_role.as_deref() == Some(name.as_str()) {
                    break Ok(r.value);
                }
                if let Some(retired) = retired(&r.value) {
                    // Recycled (`--max-requests`, `layer-cake restart`):
                    // a fresh one at once, the retry policy untouched.
                    eprintln!("group-cake: role {name} retired after {} requests ({}); starting a fresh one", retired.requests, retired.reason);
                    tracing::info!(role = %name, "Role {name} retired; starting a fresh one");
                    if let Err(fault) = start_role(&mut cx, &home, &directory, entry) {
                        eprintln!("group-cake: cannot restart {name}: {fault}");
                    }
                    continue;
                }
                match entry.delays.next() {
                    Some(delay) => {
                        eprintln!("group-cake: restarting {name} in {:.1}s", delay.as_secs_f64());
                        tracing::info!(role = %name, "Role {name} ended; restarting it in {:.1}s", delay.as_secs_f64());
                        let me = cx.address().clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = me.send(RestartRole { name });
                        });
                    }
                    None => {
                        returned.insert(name, r.value);
                        if options.main_role.is_none() && supervised.values().all(|s| s.proxy.is_none()) && returned.len() == supervised.len() {
                            break Ok(Payload::new(RolesReturned { roles: std::mem::take(&mut returned) }));
                        }
                    }
                }
            },
            RestartRole as r => {
                tracing::info!(role = %r.name, "Restarting role {}", r.name);
                if let Some(entry) = supervised.get_mut(&r.name)
                    && entry.proxy.is_none()
                    && let Err(fault) = start_role(&mut cx, &home, &directory, entry)
                {
                    eprintln!("group-cake: cannot restart {}: {fault}", r.name);
                }
            },
            Stop as _ => break Err(Faulted::aborted()),
            _other => {},
        })
    };
    // Stop whatever still runs, recording what each returns.
    for entry in supervised.values() {
        if let Some(proxy) = &entry.proxy {
            let _ = cx.send(Stop, proxy);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while supervised.values().any(|s| s.proxy.is_some()) {
        let message = tokio::select! {
            message = cx.input() => message,
            () = tokio::time::sleep_until(deadline) => break,
        };
        if let Ok(r) = message.downcast::<Returned>() {
            let from = cx.return_address().clone();
            if let Some(entry) = supervised
                .values_mut()
                .find(|s| s.proxy.as_ref() == Some(&from))
            {
                entry.proxy = None;
                record_stop(&entry.role, &r.value);
            }
        }
    }
    let _ = cx.stop(&node, Duration::from_secs(5)).await;
    result
}

/// Starts `entry`'s role as a child process.
fn start_role(
    cx: &mut Context,
    home: &Home,
    directory: &HostPort,
    entry: &mut Supervised,
) -> Result<(), Faulted> {
    let role = &entry.role;
    let executable = role.executable().map_err(|e| {
        Faulted::new(format!("cannot read role {}", role.name())).with_explanation(e.to_string())
    })?;
    let settings = role.settings().map_err(|e| {
        Faulted::new(format!("cannot read role {}", role.name())).with_explanation(e.to_string())
    })?;
    tracing::info!(role = %role.name(), executable = %executable, "Starting role {}", role.name());
    // A copy in the home's script/ folder wins (see `Home::program`).
    let mut options = ProcessOptions::new(home.program(&executable))
        .role_name(role.name())
        .flag("home-path", home.path().display().to_string())
        .flag("connect-to-directory", directory.to_string());
    // A role of a group that `layer-cake run` or `start` started says so.
    let origin = match crate::process::config().origin {
        Origin::Run | Origin::RunChild => Some("RUN_CHILD"),
        Origin::Start | Origin::StartChild => Some("START_CHILD"),
        Origin::Shell => None,
    };
    if let Some(origin) = origin
        && !settings.contains_key("origin")
    {
        options = options.flag("origin", origin);
    }
    // A role with secret settings gets the key this group was given, over
    // its stdin (`docs/secrets.md`); without one it fails closed itself.
    if settings.values().any(|v| crate::secret::is_secret(v))
        && let Some(key) = crate::process::secret_key()
    {
        options = options.secret_key(key);
    }
    for (name, value) in settings {
        options = options.flag(&name, value);
    }
    entry.proxy = Some(cx.spawn_process(options));
    Ok(())
}

/// Records a role's end in its history.
fn record_stop(role: &Role, value: &Payload) {
    let text = json::to_typed_string(value, false).unwrap_or_else(|e| {
        format!(r#"{{"value":["Faulted",{{"condition":"unencodable return value","explanation":{:?}}},[]]}}"#, e.to_string())
    });
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if let Err(e) = role.record_stop(value) {
        tracing::warn!("cannot record the end of {}: {e}", role.name());
    }
}

/// The [`Retired`](crate::process::Retired) a recycled role returned, if
/// that is what `value` is.
fn retired(value: &Payload) -> Option<crate::process::Retired> {
    value.downcast_ref::<crate::process::Retired>().cloned()
}

/// A returned value in a few words.
fn describe(value: &Payload) -> String {
    match (value.downcast_ref::<Faulted>(), value.as_opaque()) {
        (Some(fault), _) => fault.to_string(),
        (None, Some(opaque)) => opaque.signature.clone(),
        (None, None) => value.signature(),
    }
}
