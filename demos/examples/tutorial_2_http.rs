//! The tutorial's step 2 (`docs/tutorial.md`): an HTTP front.
//!
//! ```text
//! $ cargo run -p layer-cake-demos --example tutorial_2_http
//! tutorial_2_http: listening on 127.0.0.1:5050
//! $ curl -s 'http://127.0.0.1:5050/Greet?name=Ann'      # from another terminal
//! {"value":["unicode","hello Ann",[]]}
//! ```

use layer_cake::net::{HttpServer, ListenOptions, Listening, NotListening};
use layer_cake::{Context, Faulted, HostPort, Message, Stop, on};
use serde::{Deserialize, Serialize};

/// The request: `/Greet?name=Ann` becomes `Greet { name: "Ann" }`.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
}

/// The program's arguments: where to listen.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Args {
    server_address: HostPort,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            server_address: HostPort::new("127.0.0.1", 5050),
        }
    }
}

/// Listens for HTTP; each request arrives as a message, and the reply
/// becomes the response.
async fn main_actor(mut cx: Context, args: Args) -> Result<(), Faulted> {
    let front = HttpServer::new().accept::<Greet>();
    cx.listen(args.server_address, ListenOptions::http(front));
    loop {
        on!(cx.input().await, {
            Listening as l => eprintln!("tutorial_2_http: listening on {}", l.listening),
            NotListening as n => return Err(n.into_fault()),
            Greet as g => {
                let _ = cx.reply(format!("hello {}", g.name));
            },
            Stop as _ => return Ok(()),
            other => tracing::warn!("ignored {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(main_actor)
}
