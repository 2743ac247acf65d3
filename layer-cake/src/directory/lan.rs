//! Where the directories expect each other: the standard ports and the
//! standard LAN directory address.
//!
//! The directory tree meets at fixed places. The HOST directory (`host-cake`)
//! listens at [`directory_at_host`] (`127.0.0.1:54195`); the LAN directory
//! (`lan-cake`) listens at [`lan_listen_default`] (`0.0.0.0:54195`) on a host
//! that owns the LAN's *standard* address. That address follows from the
//! primary IP of the host looking for it ([`standard_lan_directory`]):
//!
//! | primary IP            | LAN directory        |
//! |-----------------------|----------------------|
//! | `192.168.x.x`         | `192.168.0.195:54195`|
//! | `172.16.x.x`–`172.31.x.x` | `172.16.0.195:54195` |
//! | `10.x.x.x`            | `10.0.0.195:54195`   |
//! | anything else         | no LAN directory     |
//!
//! A HOST directory with no configured parent *auto-connects* to that address
//! the first time a listing needs to go to the LAN ([`auto_lan_directory`]).
//! The environment variable [`LAN_AUTOCONNECT_VAR`]
//! (`LAYER_CAKE_LAN_AUTOCONNECT`) set to `0`, `off`, `false` or `no` turns
//! that off; the daemons also take `--no-lan-autoconnect` (the same, per
//! process) and `--directory-at-lan=HOST:PORT` (an explicit parent, which is
//! used whatever the variable says). See `docs/lan.md`.
//!
//! ```
//! use std::net::IpAddr;
//! use layer_cake::directory::lan::{standard_lan_directory, DIRECTORY_PORT};
//! use layer_cake::net::HostPort;
//!
//! let ip: IpAddr = "192.168.7.42".parse().unwrap();
//! assert_eq!(standard_lan_directory(ip), Some(HostPort::new("192.168.0.195", DIRECTORY_PORT)));
//! assert_eq!(standard_lan_directory("8.8.8.8".parse().unwrap()), None);
//! ```

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use crate::net::HostPort;

/// The port every directory daemon listens on: `54195`.
pub const DIRECTORY_PORT: u16 = 54195;

/// The environment variable that can turn LAN auto-connect off:
/// `LAYER_CAKE_LAN_AUTOCONNECT`. See [`lan_autoconnect_enabled`].
pub const LAN_AUTOCONNECT_VAR: &str = "LAYER_CAKE_LAN_AUTOCONNECT";

/// The address used only to learn which local address the host would send
/// from: a TEST-NET-1 address (RFC 5737) that is never routed anywhere.
/// Nothing is ever sent to it; a UDP `connect` only picks a route.
const PROBE_ADDRESS: (Ipv4Addr, u16) = (Ipv4Addr::new(192, 0, 2, 123), 9);

/// Where the HOST directory listens and every process and group on the host
/// finds it: `127.0.0.1:54195`.
pub fn directory_at_host() -> HostPort {
    HostPort::new("127.0.0.1", DIRECTORY_PORT)
}

/// Where `lan-cake` listens unless told otherwise: `0.0.0.0:54195` (every
/// interface, so the host owning the standard address answers on it).
pub fn lan_listen_default() -> HostPort {
    HostPort::new("0.0.0.0", DIRECTORY_PORT)
}

/// The host's primary IP: the local address a UDP socket gets when it is
/// "connected" towards a public address (no packet is sent).
///
/// `None` when there is no route at all, or when the address is loopback
/// (`127.x`), unspecified (`0.x`) or link-local (`169.254.x`): none of
/// those says which LAN the host is on.
pub fn primary_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(PROBE_ADDRESS).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    usable_primary(ip).then_some(ip)
}

/// Whether an address found by [`primary_ip`] names a network.
fn usable_primary(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(a == 127 || a == 0 || (a == 169 && b == 254))
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified()),
    }
}

/// The standard LAN directory for a host whose primary IP is `ip`:
/// `192.168.0.195`, `172.16.0.195` or `10.0.0.195` for the three private
/// IPv4 ranges (RFC 1918), port [`DIRECTORY_PORT`]; `None` for any other
/// address (public, loopback, IPv6 …).
pub fn standard_lan_directory(ip: IpAddr) -> Option<HostPort> {
    let IpAddr::V4(v4) = ip else {
        return None;
    };
    let host = match v4.octets() {
        [192, 168, ..] => "192.168.0.195",
        [172, 16..=31, ..] => "172.16.0.195",
        [10, ..] => "10.0.0.195",
        _ => return None,
    };
    Some(HostPort::new(host, DIRECTORY_PORT))
}

/// The standard LAN directory for this host: [`standard_lan_directory`] of
/// [`primary_ip`], whatever [`LAN_AUTOCONNECT_VAR`] says.
pub fn directory_at_lan() -> Option<HostPort> {
    primary_ip().and_then(standard_lan_directory)
}

/// Whether a HOST directory may connect to the standard LAN directory on its
/// own. On unless the environment variable [`LAN_AUTOCONNECT_VAR`] is `0`,
/// `off`, `false` or `no` (any case, surrounding blanks ignored).
pub fn lan_autoconnect_enabled() -> bool {
    autoconnect_setting(std::env::var(LAN_AUTOCONNECT_VAR).ok().as_deref())
}

/// The rule behind [`lan_autoconnect_enabled`], given the variable's value.
fn autoconnect_setting(value: Option<&str>) -> bool {
    match value {
        None => true,
        Some(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        ),
    }
}

/// Where a HOST directory with no configured parent auto-connects:
/// [`directory_at_lan`], or `None` when auto-connect is off
/// ([`lan_autoconnect_enabled`]) or the host's primary IP is in no private
/// range. An explicit `--directory-at-lan` bypasses this function.
pub fn auto_lan_directory() -> Option<HostPort> {
    if lan_autoconnect_enabled() {
        directory_at_lan()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan(ip: &str) -> Option<String> {
        standard_lan_directory(ip.parse().unwrap()).map(|h| h.to_string())
    }

    #[test]
    fn fixed_addresses() {
        assert_eq!(DIRECTORY_PORT, 54195);
        assert_eq!(directory_at_host().to_string(), "127.0.0.1:54195");
        assert_eq!(lan_listen_default().to_string(), "0.0.0.0:54195");
    }

    #[test]
    fn class_c_private() {
        for ip in [
            "192.168.0.1",
            "192.168.1.20",
            "192.168.255.254",
            "192.168.0.195",
        ] {
            assert_eq!(lan(ip).as_deref(), Some("192.168.0.195:54195"), "{ip}");
        }
        assert_eq!(lan("192.167.255.255"), None);
        assert_eq!(lan("192.169.0.1"), None);
    }

    #[test]
    fn class_b_private() {
        for ip in ["172.16.0.1", "172.20.3.4", "172.31.255.254"] {
            assert_eq!(lan(ip).as_deref(), Some("172.16.0.195:54195"), "{ip}");
        }
        assert_eq!(lan("172.15.255.255"), None);
        assert_eq!(lan("172.32.0.1"), None);
    }

    #[test]
    fn class_a_private() {
        for ip in ["10.0.0.1", "10.0.0.195", "10.200.1.1", "10.255.255.255"] {
            assert_eq!(lan(ip).as_deref(), Some("10.0.0.195:54195"), "{ip}");
        }
        assert_eq!(lan("9.255.255.255"), None);
        assert_eq!(lan("11.0.0.1"), None);
    }

    #[test]
    fn everything_else_has_no_lan_directory() {
        for ip in [
            "8.8.8.8",
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "192.0.2.123",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:192.168.1.1",
        ] {
            assert_eq!(lan(ip), None, "{ip}");
        }
    }

    #[test]
    fn primaries_that_name_no_network_are_ignored() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "169.254.10.1",
            "::1",
            "::",
        ] {
            assert!(!usable_primary(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.1",
            "169.253.1.1",
            "8.8.8.8",
            "fd00::1",
        ] {
            assert!(usable_primary(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn primary_ip_is_never_an_ignored_one() {
        // Only a UDP connect: nothing leaves the host.
        if let Some(ip) = primary_ip() {
            assert!(usable_primary(ip), "{ip}");
            assert_eq!(directory_at_lan(), standard_lan_directory(ip));
        }
    }

    #[test]
    fn autoconnect_variable() {
        assert!(autoconnect_setting(None));
        for on in ["1", "on", "yes", "true", "", "anything"] {
            assert!(autoconnect_setting(Some(on)), "{on:?}");
        }
        for off in ["0", "off", "false", "no", "OFF", " No ", "False"] {
            assert!(!autoconnect_setting(Some(off)), "{off:?}");
        }
    }
}
