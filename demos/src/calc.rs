//! The JSON-RPC 2.0 specification's example methods (section 7), as the
//! `calc_worker` demo answers them and the `rpc_hyper` baseline computes
//! them: one function, so the benchmark compares like with like.

use layer_cake::net::http::jsonrpc::{RpcCall, RpcError};
use serde::Deserialize;
use serde_json::{Value, json};

/// `subtract`'s params, by position or by name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Subtract {
    Positional(i64, i64),
    Named { minuend: i64, subtrahend: i64 },
}

/// The answer to one call.
pub fn calc(call: &RpcCall) -> Result<Value, RpcError> {
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
