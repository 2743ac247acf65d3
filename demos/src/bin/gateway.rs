//! **gateway** — a JSON-RPC 2.0 gateway in front of workers found through
//! the directory (the rust10x "worker architecture" seed).
//!
//! One endpoint, `POST /api/rpc`. A call whose method is `service/method`
//! goes to a worker of that service (`llm_worker`, `calc_worker`, or a
//! foreign HTTP worker named with `--foreign`), the prefix stripped and
//! `<uuid>@web-gateway` appended to its call chain; a method without `/` is
//! answered here: `ping` (→ `"pong"`) and `whoami` (→ the caller, or null).
//! `Authorization: Bearer <token>` names the caller when the token is one of
//! `--tokens` (`demo1-token:demo1` by default); the caller travels with the
//! call to the worker, which may refuse calls without one.
//!
//! ```text
//! $ cargo run -p host-cake -- --no-lan-autoconnect &
//! $ cargo run -p layer-cake-demos --bin gateway &
//! gateway: listening on 127.0.0.1:8080
//! $ cargo run -p layer-cake-demos --bin llm_worker &
//! $ cargo run -p layer-cake-demos --bin calc_worker &
//! $ curl -s -H 'Authorization: Bearer demo1-token' -d '{"jsonrpc":"2.0","id":1,"method":"llm-worker/one_shot_msg","params":{"data":{"prompt":"why is the sky blue","mode":"System"}}}' http://127.0.0.1:8080/api/rpc
//! ```
//!
//! `--server-address` (127.0.0.1:8080) says where to listen; `--scope`
//! (HOST) where to look for workers; `--gateway-name` (web-gateway) the
//! name in call chains; `--foreign=pyworker=http://127.0.0.1:8082/api/rpc`
//! (comma-separated) adds foreign workers. `--debug-level=CONSOLE` shows the
//! request log, one JSON line per request. `docs/gateway.md` has more.

use layer_cake::directory::Scope;
use layer_cake::gateway::{self, GatewayOptions};
use layer_cake::net::http::HeaderMap;
use layer_cake::net::http::jsonrpc::{RpcCall, RpcError, RpcResult};
use layer_cake::net::{HttpServer, Listening, NotListening};
use layer_cake::{Context, Faulted, HostPort, Returned, Stop, on};
use layer_cake_demos as demo;
use serde_json::{Value, json};

/// The arguments (see the module's documentation).
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Args {
    server_address: HostPort,
    scope: Scope,
    gateway_name: String,
    foreign: String,
    tokens: String,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 8080),
            scope: Scope::Host,
            gateway_name: "web-gateway".into(),
            foreign: String::new(),
            tokens: "demo1-token:demo1".into(),
        }
    }
}

/// `token:user,token:user` as pairs.
fn pairs(text: &str, separator: char) -> Vec<(String, String)> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| p.split_once(separator))
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .collect()
}

/// The caller named by `Authorization: Bearer <token>`, if it is known.
fn caller(tokens: &[(String, String)], headers: &HeaderMap) -> Option<String> {
    let given = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    tokens
        .iter()
        .find(|(token, _)| token == given)
        .map(|(_, user)| user.clone())
}

/// The gateway's own methods (those without `/`).
fn local(cx: &Context, call: &RpcCall) -> Result<Value, RpcError> {
    match call.method.as_str() {
        "ping" => Ok(json!("pong")),
        "whoami" => Ok(json!(gateway::caller(cx))),
        _ => Err(RpcError::method_not_found()),
    }
}

async fn gateway_demo(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let tokens = pairs(&args.tokens, ':');
    let front = HttpServer::new()
        .json_rpc("/api/rpc")
        .caller(move |headers| caller(&tokens, headers));
    let mut options = GatewayOptions::new(&args.gateway_name)
        .scope(args.scope)
        .listen(args.server_address.clone(), front)
        .local(cx.address().clone());
    for (service, url) in pairs(&args.foreign, '=') {
        options = options
            .foreign(&service, &url)
            .map_err(|e| Faulted::from_error("bad --foreign", &e))?;
        eprintln!("gateway: foreign worker {service} at {url}");
    }
    cx.spawn_gateway(options)
        .map_err(|e| Faulted::from_error("cannot start the gateway", &e))?;
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => demo::announce("gateway", &l),
            NotListening as n => return Err(n.into_fault()),
            RpcCall as call => {
                let _ = match local(&cx, &call) {
                    Ok(result) => cx.reply(RpcResult::new(result)).map_err(drop),
                    Err(e) => cx.reply(e).map_err(drop),
                };
            },
            Returned as r => {
                return Err(r.into_result::<()>().err().unwrap_or_else(|| Faulted::new("the gateway ended")));
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("gateway ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(gateway_demo)
}
