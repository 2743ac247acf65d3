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
use layer_cake::net::http::jsonrpc::{RpcCall, RpcResult};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::calc::calc;
use serde::Deserialize;

/// The arguments: the scope to publish at (HOST by default).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    scope: Scope,
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
