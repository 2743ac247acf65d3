//! **llm_worker** — a stub of the rust10x seed's `llm-worker`, published
//! for the [gateway](../gateway/index.html) as `rpc:llm-worker:<uuid>`.
//!
//! Through the gateway, `llm-worker/one_shot_msg` with params
//! `{"data":{"prompt":"…","mode":"System"}}` is answered
//! `{"data":{"response":"…"}}` (a canned text: no model is called);
//! `llm-worker/get_model_list` with `{"data":{"models":["stub-1"]}}`;
//! `llm-worker/crash` with a fault (to show how one reaches the caller).
//! Calls without an authenticated caller are refused (`-32002`), as the
//! seed's worker refuses requests without a context.
//!
//! Each call is logged on stderr with what the worker sees:
//!
//! ```text
//! llm_worker: call {"rpc_chain":["<uuid>@web-gateway"],"rpc_id":1,"rpc_method":"one_shot_msg","user_id":"demo1","uuid":"<uuid>"}
//! ```
//!
//! `--connect-to-directory=HOST:PORT` names another directory; `--scope=LAN`
//! publishes for the whole LAN.

use layer_cake::directory::{Delivered, Dropped, NotPublished, Published, Scope};
use layer_cake::gateway;
use layer_cake::net::http::call_log_fields;
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

/// `one_shot_msg`'s params: `{"data":{"prompt":…,"mode":…}}`.
#[derive(Debug, Deserialize)]
struct OneShot {
    data: Prompt,
}

#[derive(Debug, Deserialize)]
struct Prompt {
    prompt: String,
    mode: Mode,
}

#[derive(Debug, Deserialize)]
enum Mode {
    System,
    User,
    Assistant,
}

/// The answer to one call.
fn answer(cx: &Context, call: &RpcCall) -> Result<Value, Result<RpcError, Faulted>> {
    if gateway::caller(cx).is_none() {
        return Err(Ok(RpcError::unauthorized()));
    }
    match call.method.as_str() {
        "one_shot_msg" => {
            let params: OneShot = call.params_as().map_err(Ok)?;
            let response = format!(
                "(stub, {:?} prompt of {} characters) the sky is blue because air scatters blue light more than red",
                params.data.mode,
                params.data.prompt.chars().count()
            );
            Ok(json!({"data": {"response": response}}))
        }
        "get_model_list" => Ok(json!({"data": {"models": ["stub-1"]}})),
        "crash" => Err(Err(Faulted::new("the model crashed"))),
        _ => Err(Ok(RpcError::method_not_found())),
    }
}

async fn llm_worker(mut cx: Context, args: Args) -> Result<(), Faulted> {
    cx.publish(gateway::publication("llm-worker"), args.scope);
    loop {
        let message = cx.input().await;
        on!(message, {
            Published as p => eprintln!("llm_worker: published {}", p.name),
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish {}", n.name)).with_explanation(n.reason));
            },
            RpcCall as call => {
                eprintln!("llm_worker: call {}", call_log_fields(&call, cx.meta()));
                let _ = match answer(&cx, &call) {
                    Ok(result) => cx.reply(RpcResult::new(result)).map_err(drop),
                    Err(Ok(error)) => cx.reply(error).map_err(drop),
                    Err(Err(fault)) => cx.reply(fault).map_err(drop),
                };
            },
            Delivered as _ => {},
            Dropped as _ => {},
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("llm_worker ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(llm_worker)
}
