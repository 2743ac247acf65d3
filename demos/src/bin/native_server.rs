//! **native_server** — a layer-cake process reached over the native
//! transport, optionally passing every request on to another one.
//!
//! It listens at `--listen-at` (default `127.0.0.1:5051`) and answers each
//! [`Xy`] with a table. With `--forward-to=host:port` it connects there
//! instead and *forwards* each request, keeping the original return address:
//! the far server's answer travels back through this process to the asker,
//! which never knows there was a hop. If the far server goes away, requests
//! get a `TemporarilyUnavailable` fault — and a request already in flight is
//! answered with a "connection lost" fault by the link itself.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin native_server -- --listen-at=127.0.0.1:5052 &
//! $ cargo run -p layer-cake-demos --bin native_server -- --forward-to=127.0.0.1:5052
//! listening on 127.0.0.1:5051
//! connected to 127.0.0.1:5052
//! ```
//!
//! It prints `listening on <address>` (and `connected to <address>`) on
//! stderr, so a script or test can start it on port 0 and learn the port.
//! Ctrl-C stops it.

use layer_cake::net::{
    Accepted, Closed, ConnectOptions, Connected, HostPort, LanKey, LinkOptions, ListenOptions,
    Listening, NotConnected, NotListening,
};
use layer_cake::{Address, Context, Faulted, Stop, on};
use layer_cake_demos::Xy;
use serde::Deserialize;

/// The arguments.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    /// Where to listen.
    listen_at: HostPort,
    /// Another native_server to pass requests on to.
    forward_to: Option<HostPort>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            listen_at: HostPort::new("127.0.0.1", 5051),
            forward_to: None,
        }
    }
}

async fn native_server(mut cx: Context, args: Args) -> Result<(), Faulted> {
    // Links to other hosts are secured with the LAN key (`--lan-key`,
    // `LAYER_CAKE_LAN_KEY` or the default place).
    let link = LinkOptions {
        lan_key: LanKey::find(layer_cake::process::config().lan_key.as_deref())
            .map_err(|e| Faulted::new(e.to_string()))?,
        ..LinkOptions::default()
    };
    cx.listen(
        args.listen_at.clone(),
        ListenOptions::native().link(link.clone()),
    );
    let mut onward: Option<Address> = None;
    loop {
        let message = cx.input().await;
        on!(message, {
            Listening as l => {
                eprintln!("listening on {}", l.listening);
                if let Some(far) = &args.forward_to {
                    cx.connect(far.clone(), ConnectOptions::native().link(link.clone()));
                }
            },
            NotListening as n => return Err(n.into_fault()),
            Connected as c => {
                eprintln!("connected to {}", c.remote);
                onward = Some(c.proxy);
            },
            NotConnected as n => return Err(n.into_fault()),
            Accepted as _ => {},
            Closed as c => {
                if onward.as_ref() == Some(&c.proxy) {
                    eprintln!("lost {} ({:?}: {})", c.remote, c.reason, c.note);
                    onward = None;
                }
            },
            Xy as xy => match (&onward, &args.forward_to) {
                (Some(far), _) => {
                    if let Err(e) = cx.forward(xy, far) {
                        let _ = cx.reply(Faulted::temporarily_unavailable(e.to_string()));
                    }
                },
                (None, Some(far)) => {
                    let _ = cx.reply(Faulted::temporarily_unavailable(format!("no connection to {far}")));
                },
                (None, None) => layer_cake_demos::answer_table(&cx, xy),
            },
            Stop as _ => return Err(Faulted::aborted()),
            other => tracing::warn!("native_server ignores {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(native_server)
}
