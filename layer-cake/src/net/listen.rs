//! `listen` and `connect` for any actor: binding, connecting and reporting
//! the outcome are the same for both modes; what runs on the socket then is
//! the native link or the HTTP front/client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::{
    ConnectOptions, HostPort, ListenId, ListenOptions, Listening, NotConnected, NotListening,
};
use crate::runtime::{Address, Context};

struct Listen {
    task: AbortHandle,
    owner: Address,
    requested: HostPort,
}

fn listens() -> &'static Mutex<HashMap<ListenId, Listen>> {
    static LISTENS: OnceLock<Mutex<HashMap<ListenId, Listen>>> = OnceLock::new();
    LISTENS.get_or_init(Default::default)
}

fn next_listen_id() -> ListenId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    ListenId(NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn host_port(address: std::net::SocketAddr) -> HostPort {
    HostPort::new(address.ip().to_string(), address.port())
}

impl Context {
    /// Listens at `at`. The outcome arrives as [`Listening`] (with the real
    /// port when port 0 was asked for) or [`NotListening`] (with the
    /// operating system's reason). In native mode each connection then
    /// arrives as an [`Accepted`](super::Accepted); as an HTTP front, each
    /// request arrives as the message it names, with a return address that
    /// answers it. The listen belongs to this actor: it stops when the actor
    /// ends (and so do the native connections it accepted).
    pub fn listen(&mut self, at: HostPort, options: ListenOptions) -> ListenId {
        let id = next_listen_id();
        let owner = self.address().clone();
        let requested = at.clone();
        let reporter = owner.clone();
        let owned = tokio_util::sync::CancellationToken::new();
        let alive = owner
            .mailbox()
            .is_some_and(|m| m.watch(crate::runtime::Watcher::Token(owned.clone())));
        if !alive {
            owned.cancel();
        }
        let task = tokio::spawn(async move {
            tokio::select! {
                () = owned.cancelled() => {
                    listens().lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                }
                () = listen_and_serve(id, at, reporter, options) => {}
            }
        })
        .abort_handle();
        listens().lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            Listen {
                task,
                owner,
                requested,
            },
        );
        id
    }

    /// Stops a listen started by [`listen`](Context::listen); its owner then
    /// receives [`NotListening`] ("stopped"). Connections already accepted
    /// carry on. Returns false if there was no such listen.
    pub fn stop_listening(&mut self, id: ListenId) -> bool {
        let Some(listen) = listens()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
        else {
            return false;
        };
        listen.task.abort();
        let _ = listen.owner.send(NotListening {
            requested: listen.requested,
            reason: "stopped".into(),
        });
        true
    }

    /// Connects to `to`. The outcome arrives as [`Connected`](super::Connected),
    /// whose `proxy` is the peer, or [`NotConnected`] (refused, unreachable,
    /// timed out, or a local listener of another user).
    ///
    /// A native connect to a loopback address goes over the abstract Unix
    /// socket beside the listener when there is one
    /// ([`LinkOptions::unix_socket`](super::LinkOptions)), over TCP
    /// otherwise; either way a local listener must belong to this user,
    /// root or the allowed group.
    pub fn connect(&mut self, to: HostPort, options: ConnectOptions) {
        let owner = self.address().clone();
        tokio::spawn(async move {
            let Some(client) = options.http else {
                super::native::connect(owner, to, options.link, options.timeout).await;
                return;
            };
            let attempt = TcpStream::connect((to.host.as_str(), to.port));
            let stream = match tokio::time::timeout(options.timeout, attempt).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let _ = owner.send(NotConnected {
                        requested: to,
                        reason: e.to_string(),
                    });
                    return;
                }
                Err(_) => {
                    let _ = owner.send(NotConnected {
                        requested: to,
                        reason: format!("timed out after {:?}", options.timeout),
                    });
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            super::http::client(stream, owner, to, client).await;
        });
    }
}

/// Binds, reports the outcome to `reporter`, then serves until aborted.
async fn listen_and_serve(id: ListenId, at: HostPort, reporter: Address, options: ListenOptions) {
    let listener = match TcpListener::bind((at.host.as_str(), at.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            listens()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            let _ = reporter.send(NotListening {
                requested: at,
                reason: e.to_string(),
            });
            return;
        }
    };
    let listening = match listener.local_addr() {
        Ok(a) => host_port(a),
        Err(_) => at.clone(),
    };
    // Whatever a peer may connect to is bound before the listen is
    // reported.
    let unix = match options.http {
        Some(_) => Vec::new(),
        None => super::native::bind_beside(&listener, &listening, &options.link),
    };
    tracing::debug!(target: "layer_cake::object", tag = "(", "Listening on \"{listening}\", requested \"{at}\"");
    let _ = reporter.send(Listening {
        requested: at,
        listening: listening.clone(),
        id,
    });
    match options.http {
        Some(front) => super::http::serve(listener, reporter, listening, front).await,
        None => super::native::serve(listener, unix, reporter, listening, options.link).await,
    }
}
