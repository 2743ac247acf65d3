//! **trace_context** — the test endpoint the W3C trace-context harness
//! drives (`w3c/trace-context`, `test/test.py`).
//!
//! The harness POSTs a JSON list of callbacks, `[{"url": …, "arguments":
//! […]}]`, with `traceparent` and `tracestate` headers of its choosing. For
//! each callback this server POSTs the callback's `arguments` to its `url`,
//! continuing the request's trace: the same trace id with a new span id per
//! call, and the request's `tracestate` — or a new trace when the request's
//! headers break the W3C rules. It then answers the harness `200 ok`.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin trace_context -- --server-address=127.0.0.1:5055 &
//! trace_context: listening on 127.0.0.1:5055
//! $ python test.py http://127.0.0.1:5055/test     # from the harness's test/ folder
//! ```
//!
//! Nothing here is written for the harness: the HTTP front continues (or
//! restarts) the trace of every request by the spec's rules and the HTTP
//! client mode sends it on with each call. Only plain `http://` URLs are
//! called (no TLS in the client mode).

use std::time::Duration;

use layer_cake::gateway::ForeignUrl;
use layer_cake::net::{
    Close, ConnectOptions, Connected, HttpClient, HttpRequest, HttpResponse, HttpServer,
    ListenOptions, Listening, NotConnected, NotListening,
};
use layer_cake::{Context, Faulted, Message, Stop, on};
use layer_cake_demos::{self as demo, ServerArgs};
use serde::{Deserialize, Serialize};

/// What the harness POSTs to `/test`: the calls to make.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "test")]
#[serde(transparent)]
struct Callbacks {
    calls: Vec<Callback>,
}

/// One call: POST `arguments` (as JSON) to `url`.
#[derive(Debug, Serialize, Deserialize)]
struct Callback {
    url: String,
    arguments: Vec<Callback>,
}

/// How long one call may take.
const PATIENCE: Duration = Duration::from_secs(10);

async fn trace_context(mut cx: Context, args: ServerArgs) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Callbacks>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => demo::announce("trace_context", &l),
            NotListening as n => return Err(n.into_fault()),
            Callbacks as callbacks => {
                let answer = cx.return_path();
                let request = cx.meta().cloned().unwrap_or_default();
                for call in callbacks.calls {
                    // Waiting for a connection reads other messages, which
                    // carry other contexts: each call is made in the
                    // request's own.
                    if let Err(fault) = post(&mut cx, &call, &request).await {
                        tracing::warn!("callback to {} failed: {fault}", call.url);
                    }
                }
                let _ = answer.reply(HttpResponse::text(200, "ok"));
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("trace_context ignores {}", other.signature()),
        })
    }
}

/// POSTs the call's arguments to its URL, in the trace of `request`.
async fn post(
    cx: &mut Context,
    call: &Callback,
    request: &layer_cake::runtime::Meta,
) -> Result<(), Faulted> {
    let url: ForeignUrl = call
        .url
        .parse()
        .map_err(|e: layer_cake::gateway::GatewayError| Faulted::new(e.to_string()))?;
    cx.connect(url.at().clone(), ConnectOptions::http(HttpClient::new()));
    let proxy = loop {
        on!(cx.input().await, {
            Connected as c => break c.proxy,
            NotConnected as n => return Err(n.into_fault()),
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("trace_context ignores {} while calling back", other.signature()),
        })
    };
    cx.set_meta(request.clone());
    let body = serde_json::to_value(&call.arguments)
        .map_err(|e| Faulted::new("cannot encode the arguments").with_explanation(e.to_string()))?;
    let answer: Result<HttpResponse, _> = cx
        .ask(HttpRequest::post_json(url.path(), &body), &proxy, PATIENCE)
        .await;
    let _ = cx.send(Close::default(), &proxy);
    answer.map(drop).map_err(|e| Faulted::new(e.to_string()))
}

fn main() {
    layer_cake::create(trace_context)
}
