//! A JSON-RPC gateway: one HTTP endpoint in front of services found through
//! the directory (and foreign workers reached by URL).
//!
//! The gateway is an actor. It listens as an HTTP front with a JSON-RPC
//! endpoint ([`HttpServer::json_rpc`]), subscribes to the services'
//! publication names (`rpc:<service>` or `rpc:<service>:<instance>`, see
//! [`publication`]) at a scope, and keeps one [`ObjectSpool`](crate::spool)
//! per service, fed by the directory's `Available` and `Dropped`. A call
//! whose method is `service/method` goes to that service's spool with the
//! prefix stripped, the same id and params, and `<uuid>@<gateway name>`
//! appended to its [`chain`](RpcCall::chain) (the uuid is the ingress
//! request's, its trace id). A method without `/` goes to the gateway's
//! local handler ([`GatewayOptions::local`]). The request context — trace,
//! and the caller the front authenticated ([`HttpServer::caller`]) —
//! travels with the call to the worker, across processes.
//!
//! | what happens | the caller gets |
//! |---|---|
//! | the worker answers [`RpcResult`](crate::net::http::jsonrpc::RpcResult) / [`RpcError`] | that result / that error |
//! | no service of that name | `-32601 Method not found`, `data.detail` naming the service |
//! | no local handler for a method without `/` | `-32601 Method not found` |
//! | the worker answers a [`Faulted`] | `-32603 Internal error`, `data.req_uuid` |
//! | no worker free or left (busy, overloaded, unavailable, lost) | `-32000 Service unavailable`, `data.req_uuid` |
//! | no answer before the spool's or the front's deadline | `-32001 Timed out`, `data.req_uuid` |
//!
//! A **foreign** worker ([`GatewayOptions::foreign`]) is a spool member
//! reached by URL that speaks JSON-RPC over HTTP: each call is POSTed there
//! as a JSON-RPC request with the same id, the caller context in the header
//! `X-WORKER-POSTAUTH` (`{"user_id":…,"rpc_chain":[…]}`) and a
//! `traceparent` with a new span.

mod foreign;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::directory::{Available, Dropped, NotSubscribed, Scope, Subscribed};
use crate::message::{Faulted, Returned, Stop};
use crate::net::http::jsonrpc::{RpcCall, RpcError};
use crate::net::http::request_uuid;
use crate::net::{HostPort, HttpServer, ListenOptions, Listening, NotListening};
use crate::runtime::{Address, Context};
use crate::spool::{JoinSpool, SpoolError, SpoolOptions, Workers};
use crate::{Message, on};

pub use foreign::{ForeignUrl, POSTAUTH};

/// The prefix of the names JSON-RPC services publish (`rpc:calc`,
/// `rpc:calc:<uuid>`).
pub const PREFIX: &str = "rpc:";

/// A publication name for one instance of `service`:
/// `rpc:<service>:<uuid v4>`, so that any number of instances can be
/// listed at once. A worker publishes it; gateways route `service/…` calls
/// to every instance found.
///
/// ```
/// let name = layer_cake::gateway::publication("calc");
/// assert!(name.starts_with("rpc:calc:"));
/// assert_eq!(layer_cake::gateway::service_of(&name), Some("calc"));
/// ```
pub fn publication(service: &str) -> String {
    format!("{PREFIX}{service}:{}", uuid::Uuid::new_v4())
}

/// The service a publication name belongs to (`rpc:calc:…` → `calc`), if
/// it is one.
pub fn service_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let service = rest.split(':').next()?;
    valid_service(service).then_some(service)
}

/// Service names: 1 to 64 of `A-Z a-z 0-9 _ . -`.
fn valid_service(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The pattern a gateway subscribes to.
const PATTERN: &str = "rpc:[A-Za-z0-9_.-]{1,64}(:[-A-Za-z0-9_.]{1,64})?";

/// The authenticated caller of the call being handled, if any (what the
/// gateway's front set; see [`HttpServer::caller`]).
pub fn caller(cx: &Context) -> Option<&str> {
    cx.meta().and_then(|m| m.caller.as_deref())
}

/// How a gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    name: String,
    scope: Scope,
    directory: Option<Address>,
    listen: Option<(HostPort, HttpServer)>,
    local: Option<Address>,
    foreign: Vec<(String, ForeignUrl)>,
    spool: SpoolOptions,
    foreign_timeout: Duration,
}

impl GatewayOptions {
    /// A gateway named `name` (the `@name` of the call chain), subscribing
    /// at HOST scope, not listening yet.
    pub fn new(name: impl Into<String>) -> Self {
        GatewayOptions {
            name: name.into(),
            scope: Scope::Host,
            directory: None,
            listen: None,
            local: None,
            foreign: Vec::new(),
            spool: SpoolOptions::new(),
            foreign_timeout: Duration::from_secs(20),
        }
    }

    /// Where services are looked for (default HOST).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Subscribes through this directory node rather than the process's
    /// own (tests run a node of their own).
    pub fn directory(mut self, node: Address) -> Self {
        self.directory = Some(node);
        self
    }

    /// Listens at `at` with `front`, which should have a
    /// [`json_rpc`](HttpServer::json_rpc) path. `Listening` and
    /// `NotListening` are passed on to the gateway's parent.
    pub fn listen(mut self, at: HostPort, front: HttpServer) -> Self {
        self.listen = Some((at, front));
        self
    }

    /// Where calls whose method has no `/` go (an actor answering
    /// [`RpcCall`]s). Without one they are answered `-32601`.
    pub fn local(mut self, handler: Address) -> Self {
        self.local = Some(handler);
        self
    }

    /// A foreign worker for `service`: JSON-RPC over HTTP at `url`
    /// (`http://127.0.0.1:8082/api/rpc`). May be given more than once, also
    /// for one service (they share its spool with any workers found through
    /// the directory).
    ///
    /// # Errors
    ///
    /// [`GatewayError`] for a service name or URL that cannot be used.
    pub fn foreign(mut self, service: &str, url: &str) -> Result<Self, GatewayError> {
        if !valid_service(service) {
            return Err(GatewayError::BadService(service.to_owned()));
        }
        let url = url.parse::<ForeignUrl>()?;
        self.foreign.push((service.to_owned(), url));
        Ok(self)
    }

    /// The options of every service's spool (its `request_timeout` is the
    /// deadline of a routed call; 25 s by default).
    pub fn spool(mut self, options: SpoolOptions) -> Self {
        self.spool = options;
        self
    }

    /// How long a foreign worker has to answer one call (default 20 s);
    /// after it the call is answered `-32001`.
    pub fn foreign_timeout(mut self, timeout: Duration) -> Self {
        self.foreign_timeout = timeout;
        self
    }
}

/// Why a gateway cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// A service name outside `A-Z a-z 0-9 _ . -` (1 to 64 of them).
    #[error("{0:?} cannot name a service (use 1 to 64 of A-Z a-z 0-9 _ . -)")]
    BadService(String),
    /// A foreign worker's URL that is not `http://host:port/path`.
    #[error("{url:?} is not a foreign worker URL: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The spool options are out of range.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl Context {
    /// Starts a gateway as a child of this actor (see the
    /// [module](crate::gateway)); calls are routed once services are found.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Spool`] when the spool options are out of range.
    pub fn spawn_gateway(&mut self, options: GatewayOptions) -> Result<Address, GatewayError> {
        options.spool.validate(&Workers::external())?;
        let name = format!("gateway-{}", options.name);
        Ok(
            self.spawn_with(crate::runtime::SpawnOptions::new().name(name), move |cx| {
                run(cx, options)
            }),
        )
    }
}

/// The gateway actor.
async fn run(mut cx: Context, options: GatewayOptions) -> Result<(), Faulted> {
    if let Some((at, front)) = options.listen.clone() {
        cx.listen(at, ListenOptions::http(front));
    }
    match &options.directory {
        Some(node) => cx.subscribe_at(node, PATTERN, options.scope),
        None => cx.subscribe(PATTERN, options.scope),
    }
    let mut services: HashMap<String, Address> = HashMap::new();
    for (service, url) in &options.foreign {
        let worker = foreign::spawn(&mut cx, service, url.clone(), options.foreign_timeout);
        let spool = spool_of(&mut cx, &mut services, service, &options)?;
        let _ = cx.send(JoinSpool { worker }, &spool);
    }
    loop {
        let message = cx.input().await;
        on!(message, {
            RpcCall as call => route(&cx, call, &services, &options),
            Available as a => {
                if let Some(service) = service_of(&a.name).map(str::to_owned) {
                    tracing::info!(service, publication = %a.name, "service available");
                    let spool = spool_of(&mut cx, &mut services, &service, &options)?;
                    let _ = cx.send(a, &spool);
                }
            },
            Dropped as d => {
                if let Some(spool) = service_of(&d.name).and_then(|s| services.get(s)) {
                    tracing::info!(publication = %d.name, reason = %d.reason, "service dropped");
                    let _ = cx.send(d, spool);
                }
            },
            Listening as l => pass_up(&cx, l),
            NotListening as n => {
                let fault = Faulted::new("the gateway cannot listen").with_explanation(n.reason.clone());
                pass_up(&cx, n);
                return Err(fault);
            },
            Subscribed as _ => {},
            NotSubscribed as n => {
                return Err(Faulted::new("the gateway cannot subscribe").with_explanation(n.reason));
            },
            Returned as r => {
                // A spool or a foreign worker ended: its service is gone
                // (found again when a worker is next Available).
                let from = cx.return_address().clone();
                services.retain(|_, spool| *spool != from);
                tracing::warn!("a gateway part ended: {:?}", r.into_result::<()>().err());
            },
            Stop as _ => {
                cx.abort();
                return Ok(());
            },
            other => tracing::warn!("the gateway ignores {}", other.signature()),
        })
    }
}

/// Sends `message` to the gateway's parent, if it has one.
fn pass_up<M: Message>(cx: &Context, message: M) {
    if !cx.parent().is_null() {
        let _ = cx.send(message, cx.parent());
    }
}

/// The spool of `service`, started on first use.
fn spool_of(
    cx: &mut Context,
    services: &mut HashMap<String, Address>,
    service: &str,
    options: &GatewayOptions,
) -> Result<Address, Faulted> {
    if let Some(spool) = services.get(service) {
        return Ok(spool.clone());
    }
    let spool_options = options.spool.clone().name(format!("spool-{service}"));
    let spool = cx
        .spawn_spool(Workers::external(), spool_options)
        .map_err(|e| Faulted::from_error("cannot start a spool", &e))?;
    services.insert(service.to_owned(), spool.clone());
    Ok(spool)
}

/// Routes one call (see the module's table).
fn route(
    cx: &Context,
    mut call: RpcCall,
    services: &HashMap<String, Address>,
    options: &GatewayOptions,
) {
    let uuid = cx
        .meta()
        .and_then(|m| m.trace)
        .map(|t| request_uuid(&t))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let Some((service, method)) = call.method.split_once('/') else {
        match &options.local {
            Some(local) => forward(cx, call, local, &uuid),
            None => {
                let _ = cx.reply(RpcError::method_not_found());
            }
        }
        return;
    };
    let Some(spool) = services.get(service) else {
        let _ = cx.reply(RpcError::method_not_found().with_data(json!({
            "req_uuid": uuid,
            "detail": format!("no service named {service:?}"),
        })));
        return;
    };
    call.method = method.to_owned();
    call.chain.push(format!("{uuid}@{}", options.name));
    forward(cx, call, spool, &uuid);
}

/// Forwards `call` (its answer goes straight back to the front), or answers
/// at once why it cannot go.
fn forward(cx: &Context, call: RpcCall, to: &Address, uuid: &str) {
    if let Err(e) = cx.forward(call, to) {
        let fault = Faulted::overloaded(format!("cannot pass the call on: {e}"));
        let _ = cx.reply(crate::net::http::jsonrpc::fault_error(&fault, uuid));
    }
}
