//! How to listen and how to connect.

use std::sync::Arc;
use std::time::Duration;

use crate::message::{Message, registry};
use crate::net::http::UriForm;

/// Settings of a native (layer-cake to layer-cake) connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// The largest frame accepted or sent; a larger one closes the
    /// connection with [`EndOfTransport::InboundStreaming`](super::EndOfTransport).
    /// Default 1 MiB.
    pub max_frame: usize,
    /// How often an idle link sends a heartbeat. Default 3 s.
    pub heartbeat_every: Duration,
    /// A link that hears nothing for this long is closed as
    /// [`WentStale`](super::EndOfTransport::WentStale) (noticed within half
    /// as long again: the reader looks every half `stale_after`). Default
    /// 10 s.
    pub stale_after: Duration,
    /// Heartbeats on loopback links too (they are off there by default: a
    /// peer on the same host that dies closes its sockets).
    pub heartbeat_on_loopback: bool,
    /// How many bytes of outgoing frames may wait for the socket before
    /// messages sent on the link are refused with `SendError::Full` (or
    /// wait, with `send_wait`) — the *soft* bound. Every frame counts: sent
    /// messages, answers, control messages, relayed frames, heartbeats.
    /// Answers, control messages and relayed frames are never refused at the
    /// soft bound; a peer that keeps the queue over it for longer than
    /// [`stale_after`](Self::stale_after) is not reading, and is disconnected
    /// with [`OutboundStreaming`](super::EndOfTransport::OutboundStreaming).
    /// Default 4 MiB.
    pub send_queue_bytes: usize,
    /// The *hard* bound of the send queue, in bytes: a frame that would take
    /// the queue past it closes the link at once with
    /// [`OutboundStreaming`](super::EndOfTransport::OutboundStreaming) and
    /// the queue is dropped unwritten. This is the most memory one peer that
    /// stops reading can hold (the flood bench measures a daemon's growth
    /// under such a peer at a little more than this). Default 8 MiB (taken
    /// as at least `send_queue_bytes`).
    pub send_queue_hard_bytes: usize,
    /// How many requests sent or relayed over the link may await an answer
    /// at once (their askers are told at once if the link ends). A peer
    /// whose relayed requests would pass it is disconnected with
    /// [`InboundStreaming`](super::EndOfTransport::InboundStreaming); local
    /// asks past it are sent but not tracked. Default 65 536.
    pub max_outstanding: usize,
    /// How long a request is remembered as awaiting its answer: after that
    /// its entry is swept (an ask that waits longer still ends at its own
    /// deadline, only without the early fault when the link ends).
    /// Default 10 minutes.
    pub outstanding_for: Duration,
    /// How many relayed routes — addresses learned over another link and
    /// written on this one — this link's table may hold while their links
    /// are open. Past it, a message that would write one more is refused
    /// (a relayed frame closes the link of the peer that sent it, with
    /// [`InboundStreaming`](super::EndOfTransport::InboundStreaming)).
    /// Default 65 536.
    pub max_relayed: usize,
    /// The key shared by the LAN's hosts. A link whose peer is not on this
    /// host (its address is not loopback) is encrypted and mutually
    /// authenticated with it before any frame is read; without a key such a
    /// link is refused. Default none; a process started through
    /// [`create`](crate::create) loads it once from `--lan-key`,
    /// `LAYER_CAKE_LAN_KEY` or the default place (see [`LanKey`](super::LanKey)).
    pub lan_key: Option<super::LanKey>,
    /// How long the handshake of a link that leaves the host may take; a
    /// peer that is slower (or silent) is refused. Default 5 s.
    pub handshake_timeout: Duration,
    /// Secures loopback links too, as if the peer were on another host.
    /// Both ends must set it (the other end would take the handshake for a
    /// bad frame, or the first frame for a bad handshake). For tests and
    /// benchmarks that run "off-host" links on one machine. Default false.
    pub secure_loopback: bool,
    /// **Insecure.** Links that leave the host stay plaintext and
    /// unauthenticated, as all links were before the LAN key: anyone who can
    /// reach the port can talk to the process, and anyone on the path can
    /// read and change the traffic. Both ends must set it; each such link
    /// logs a warning. For measuring what encryption costs, and for networks
    /// that are secured below layer-cake (an IPsec or WireGuard tunnel).
    /// Default false.
    pub insecure_plaintext_off_host: bool,
    /// A local peer (over a Unix socket or loopback TCP) is admitted when
    /// the kernel says it runs as this process's user or as root; with a
    /// group here, also when it is in that group (its primary or a
    /// supplementary group). Everyone else is dropped before a frame is
    /// read. Both ends check: a listener checks who connected, a connect
    /// checks who listens. Default: none (same user or root only).
    pub allowed_group: Option<u32>,
    /// Local links over Unix sockets: a native listen on a loopback (or
    /// unspecified) address also listens on the abstract Unix socket named
    /// after it, and a native connect to a loopback address tries that
    /// socket before TCP. Default on; off, both use TCP only.
    pub unix_socket: bool,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            max_frame: 1 << 20,
            heartbeat_every: Duration::from_secs(3),
            stale_after: Duration::from_secs(10),
            heartbeat_on_loopback: false,
            send_queue_bytes: 4 << 20,
            send_queue_hard_bytes: 8 << 20,
            max_outstanding: 1 << 16,
            outstanding_for: Duration::from_secs(600),
            max_relayed: 1 << 16,
            lan_key: None,
            handshake_timeout: Duration::from_secs(5),
            secure_loopback: false,
            insecure_plaintext_off_host: false,
            allowed_group: None,
            unix_socket: true,
        }
    }
}

impl LinkOptions {
    /// Admits local peers in the group `gid` too (see
    /// [`allowed_group`](LinkOptions::allowed_group)).
    pub fn allow_group(mut self, gid: Option<u32>) -> Self {
        self.allowed_group = gid;
        self
    }

    /// Admits the group named `name` too (the daemons' `--allow-group=NAME`;
    /// `None` leaves the setting as it is). An unknown name is an error,
    /// never "no group".
    pub fn allow_group_named(self, name: Option<&str>) -> Result<Self, UnknownGroup> {
        match name {
            Some(name) => Ok(self.allow_group(Some(group_id(name)?))),
            None => Ok(self),
        }
    }

    /// Whether local links use the abstract Unix socket beside a loopback
    /// listener (see [`unix_socket`](LinkOptions::unix_socket)).
    pub fn unix_socket(mut self, on: bool) -> Self {
        self.unix_socket = on;
        self
    }
}

/// The group named `name` (`--allow-group=NAME`): its gid, or a precise
/// error when there is no such group (a number is taken as a gid).
///
/// ```
/// // Every Linux system has a group 0.
/// assert_eq!(layer_cake::net::group_id("0").unwrap(), 0);
/// assert!(layer_cake::net::group_id("no-such-group-anywhere").is_err());
/// ```
pub fn group_id(name: &str) -> Result<u32, UnknownGroup> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(UnknownGroup {
            name: name.to_owned(),
            why: "no such group".into(),
        }),
        Err(e) => Err(UnknownGroup {
            name: name.to_owned(),
            why: e.to_string(),
        }),
    }
}

/// A group name that does not resolve, from [`group_id`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot find the group {name:?} ({why})")]
pub struct UnknownGroup {
    name: String,
    why: String,
}

/// The HTTP front: which messages a listen in HTTP mode accepts, and its
/// limits.
///
/// ```
/// use layer_cake::net::HttpServer;
/// let front = HttpServer::new().accept::<Vec<i64>>().max_body(64 * 1024);
/// assert_eq!(front.accepted(), ["vector<integer8>"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServer {
    pub(crate) accepted: Vec<&'static str>,
    pub(crate) max_body: usize,
    pub(crate) answer_within: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) uri_form: Option<Arc<UriForm>>,
    pub(crate) rpc: Option<JsonRpc>,
    pub(crate) health_check: Option<(String, String)>,
    pub(crate) max_connections: Option<usize>,
}

/// The JSON-RPC 2.0 endpoint of an HTTP front (see [`HttpServer::json_rpc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonRpc {
    /// The path it answers at (`/api/rpc`).
    pub(crate) path: String,
    /// The most calls one batch may hold.
    pub(crate) max_batch: usize,
    /// Who the caller is, from the request's headers.
    pub(crate) caller: Option<CallerCheck>,
}

/// How an HTTP front learns who is calling: a function of the request's
/// headers giving the authenticated caller (a user id), or `None` for an
/// anonymous request. See [`HttpServer::caller`].
#[derive(Clone)]
pub struct CallerCheck(pub(crate) CallerFn);

type CallerFn = std::sync::Arc<dyn Fn(&http::HeaderMap) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for CallerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerCheck(..)")
    }
}

/// Two checks are the same when they are the same function.
impl PartialEq for CallerCheck {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CallerCheck {}

/// The most calls a JSON-RPC batch may hold by default.
pub const DEFAULT_MAX_BATCH: usize = 100;

/// The least [`HttpServer::max_header_bytes`] takes: hyper reads at least
/// this much at once.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Default for HttpServer {
    fn default() -> Self {
        HttpServer {
            accepted: Vec::new(),
            max_body: 256 * 1024,
            answer_within: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            uri_form: None,
            rpc: None,
            health_check: None,
            max_connections: None,
        }
    }
}

impl HttpServer {
    /// A front that accepts no message yet.
    pub fn new() -> Self {
        HttpServer::default()
    }

    /// Accepts `M`: a request whose last path segment is `M`'s signature
    /// (`/Xy?x=2&y=2`) becomes an `M`. Registers `M` if it was not.
    pub fn accept<M: Message>(mut self) -> Self {
        let _ = registry::try_register::<M>();
        let signature = crate::message::signature::static_signature::<M>();
        if !self.accepted.contains(&signature) {
            self.accepted.push(signature);
        }
        self
    }

    /// The signatures accepted, in the order given.
    pub fn accepted(&self) -> &[&'static str] {
        &self.accepted
    }

    /// The largest request body accepted (larger: 413). Default 256 KiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long the listening actor has to answer a request (then: 504).
    /// Default 30 s.
    pub fn answer_within(mut self, deadline: Duration) -> Self {
        self.answer_within = deadline;
        self
    }

    /// How long a client has to send a request's headers (slow clients are
    /// cut off). Default 10 s.
    pub fn header_read_timeout(mut self, deadline: Duration) -> Self {
        self.header_read_timeout = deadline;
        self
    }

    /// The most bytes a request's line and headers may take; a request
    /// with more is answered 431 and its connection closed. Default 16 KiB;
    /// at least [`MIN_HEADER_BYTES`] (a smaller value is taken as that).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(MIN_HEADER_BYTES);
        self
    }

    /// REST mode: a request whose path matches `form` becomes a
    /// [`FormRequest`](crate::net::http::FormRequest) (method, the form's
    /// entries, headers, body), answered with
    /// [`Resources`](crate::net::http::Resources); other paths are mapped
    /// to accepted messages as usual.
    pub fn uri_form(mut self, form: UriForm) -> Self {
        self.uri_form = Some(Arc::new(form));
        self
    }

    /// Answers JSON-RPC 2.0 at `path` (`/api/rpc`): a `POST` there is parsed
    /// as a call or a batch, each call is asked of the listening actor as an
    /// [`RpcCall`](crate::net::http::jsonrpc::RpcCall), and the answers make
    /// the response (`204` when only notifications came). Other paths are
    /// mapped to messages as before. See `docs/gateway.md`.
    pub fn json_rpc(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.rpc_mut().path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// The JSON-RPC settings, made on first use; without a path (set by
    /// [`json_rpc`](HttpServer::json_rpc)) they answer no request.
    fn rpc_mut(&mut self) -> &mut JsonRpc {
        self.rpc.get_or_insert_with(|| JsonRpc {
            path: String::new(),
            max_batch: DEFAULT_MAX_BATCH,
            caller: None,
        })
    }

    /// The most calls one JSON-RPC batch may hold (more: the whole batch is
    /// refused with `-32600`). Default [`DEFAULT_MAX_BATCH`]. For the path
    /// set with [`json_rpc`](HttpServer::json_rpc), before or after.
    pub fn max_batch(mut self, calls: usize) -> Self {
        self.rpc_mut().max_batch = calls.max(1);
        self
    }

    /// How the JSON-RPC endpoint learns who calls: `check` gets the
    /// request's headers and gives the authenticated caller, or `None`.
    /// The caller travels with every call in its request context
    /// ([`Meta::caller`](crate::runtime::Meta)), across processes, so a
    /// worker can refuse calls without one. For the path set with
    /// [`json_rpc`](HttpServer::json_rpc), before or after.
    pub fn caller(
        mut self,
        check: impl Fn(&http::HeaderMap) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.rpc_mut().caller = Some(CallerCheck(std::sync::Arc::new(check)));
        self
    }

    /// Answers a request for `path` (any method, any query) at once with
    /// `200 OK` and `body` as `text/plain`, from the front itself: it never
    /// reaches the listening actor, so it is answered even while every
    /// worker behind it is busy or the queue is full — a load balancer's
    /// liveness probe. None by default.
    ///
    /// ```
    /// use layer_cake::net::HttpServer;
    /// let front = HttpServer::new().health_check("/health_check", "OK");
    /// ```
    pub fn health_check(mut self, path: impl Into<String>, body: impl Into<String>) -> Self {
        self.health_check = Some((path.into(), body.into()));
        self
    }
    /// The most connections the listen keeps open at once (at least 1).
    /// Past it a new connection is answered at once, without its request
    /// being read: `503`, `Retry-After: 1`, `Connection: close` and a fault
    /// naming the limit; then it is closed. Connections under the cap are
    /// not affected.
    ///
    /// Default: [`DEFAULT_MAX_CONNECTIONS`], or half of the process's
    /// limit on open files (`ulimit -n`) when that is lower: every
    /// connection is a file descriptor, and the other half is left for
    /// what else the process opens (its links, files, child processes, and
    /// the refusals themselves). Past the file limit a server could not
    /// even accept a connection to refuse it.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = Some(connections.max(1));
        self
    }

    /// The cap on open connections in force: the one set, or the default.
    pub fn connections_allowed(&self) -> usize {
        self.max_connections.unwrap_or_else(default_max_connections)
    }
}

/// The most connections a front keeps open when not told otherwise (and
/// the process may open enough files).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// [`DEFAULT_MAX_CONNECTIONS`], or half the soft limit on open files if
/// that is lower.
fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit};
        if let Ok((soft, _hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let half = usize::try_from(soft / 2).unwrap_or(usize::MAX);
            return DEFAULT_MAX_CONNECTIONS.min(half).max(1);
        }
    }
    DEFAULT_MAX_CONNECTIONS
}

/// The HTTP client mode of a connection: messages sent to the connection's
/// proxy are POSTed as JSON to `<prefix><Signature>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpClient {
    pub(crate) prefix: String,
    pub(crate) max_queued: usize,
    pub(crate) answer_within: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient {
            prefix: "/".into(),
            max_queued: 256,
            answer_within: Duration::from_secs(30),
        }
    }
}

impl HttpClient {
    /// A client POSTing to `/<Signature>`.
    pub fn new() -> Self {
        HttpClient::default()
    }

    /// The path prefix (default `/`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many requests may wait for the connection (HTTP/1.1 carries one
    /// at a time); more are answered with an `Overloaded` fault. Default 256.
    pub fn max_queued(mut self, requests: usize) -> Self {
        self.max_queued = requests;
        self
    }

    /// How long a response may take before the requester gets a `TimedOut`
    /// fault. Default 30 s.
    pub fn answer_within(mut self, deadline: Duration) -> Self {
        self.answer_within = deadline;
        self
    }
}

/// How to listen: natively (layer-cake frames) or as an HTTP front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOptions {
    pub(crate) http: Option<HttpServer>,
    pub(crate) link: LinkOptions,
}

impl ListenOptions {
    /// A native listen with default [`LinkOptions`].
    pub fn native() -> Self {
        ListenOptions::default()
    }

    /// An HTTP front.
    pub fn http(server: HttpServer) -> Self {
        ListenOptions {
            http: Some(server),
            ..ListenOptions::default()
        }
    }

    /// The settings of each accepted native connection.
    pub fn link(mut self, link: LinkOptions) -> Self {
        self.link = link;
        self
    }
}

/// How to connect: natively or as an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub(crate) http: Option<HttpClient>,
    pub(crate) link: LinkOptions,
    pub(crate) timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            http: None,
            link: LinkOptions::default(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl ConnectOptions {
    /// A native connection with default [`LinkOptions`].
    pub fn native() -> Self {
        ConnectOptions::default()
    }

    /// An HTTP client connection.
    pub fn http(client: HttpClient) -> Self {
        ConnectOptions {
            http: Some(client),
            ..ConnectOptions::default()
        }
    }

    /// The settings of the native connection.
    pub fn link(mut self, link: LinkOptions) -> Self {
        self.link = link;
        self
    }

    /// How long to try before [`NotConnected`](super::NotConnected). Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
