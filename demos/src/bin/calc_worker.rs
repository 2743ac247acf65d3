//! **calc_worker** — the JSON-RPC 2.0 specification's example methods
//! (section 7) as a worker for the [gateway](../gateway/index.html),
//! published as `rpc:calc:<uuid>`: `calc/subtract` (positional or named
//! params), `calc/sum`, `calc/get_data`, and the notifications
//! `calc/update`, `calc/notify_hello`, `calc/notify_sum`. Anything else is
//! `-32601 Method not found`; params of the wrong shape `-32602`.
//!
//! `--connect-to-directory=HOST:PORT` names another directory; `--scope=LAN`
//! publishes for the whole LAN.

use layer_cake::directory::{Delivered, Dropped, NotPublished, Published, Scope};
use layer_cake::gateway;
use layer_cake::net::http::jsonrpc::{RpcCall, RpcError, RpcResult};
use layer_cake::{Context, Faulted, Stop, on};
use serde::Deserialize;
use serde_json::{Value, json};

/// The arguments: the scope to publish at (HOST by default).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    scope: Scope,
}

/// `subtract`'s params, by position or by name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Subtract {
    Positional(i64, i64),
    Named { minuend: i64, subtrahend: i64 },
}

/// The answer to one call.
fn calc(call: &RpcCall) -> Result<Value, RpcError> {
    match call.method.as_str() {
        "subtract" => match call.params_as::<Subtract>()? {
            Subtract::Positional(a, b) => Ok(json!(a - b)),
            Subtract::Named {
                minuend,
                subtrahend,
            } => Ok(json!(minuend - subtrahend)),
        },
        "sum" => Ok(json!(call.params_as::<Vec<i64>>()?.iter().sum::<i64>())),
        "get_data" => Ok(json!(["hello", 5])),
        "update" | "notify_hello" | "notify_sum" => Ok(Value::Null),
        _ => Err(RpcError::method_not_found()),
    }
}

async fn calc_worker(mut cx: Context, args: Args) -> Result<(), Faulted> {
    cx.publish(gateway::publication("calc"), args.scope);
    loop {
        let message = cx.input().await;
        on!(message, {
            Published as p => eprintln!("calc_worker: published {}", p.name),
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish {}", n.name)).with_explanation(n.reason));
            },
            RpcCall as call => {
                let _ = match calc(&call) {
                    Ok(result) => cx.reply(RpcResult::new(result)).map_err(drop),
                    Err(e) => cx.reply(e).map_err(drop),
                };
            },
            Delivered as _ => {},
            Dropped as _ => {},
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("calc_worker ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(calc_worker)
}
