//! `layer-cake install-service`: a systemd unit that starts host-cake,
//! lan-cake or a whole home at boot, and how to enable it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What the unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// The host's directory.
    HostCake,
    /// The LAN's directory.
    LanCake,
    /// A home's roles, run by group-cake (`layer-cake run`).
    Home(PathBuf),
}

impl Service {
    /// The unit's name: `layer-cake-host-cake.service`,
    /// `layer-cake-home-<folder>.service` …
    pub fn unit_name(&self) -> String {
        match self {
            Service::HostCake => "layer-cake-host-cake.service".into(),
            Service::LanCake => "layer-cake-lan-cake.service".into(),
            Service::Home(home) => {
                let name: String = home
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "home".into())
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                format!("layer-cake-home-{name}.service")
            }
        }
    }
}

/// The user a unit runs as unless told otherwise: a system account made for
/// it (`useradd --system --no-create-home --shell /usr/sbin/nologin
/// layer-cake`).
pub const DEFAULT_USER: &str = "layer-cake";

/// Whether `user` can go in `User=`: a plain account name (letters, digits,
/// `_`, `-`, `.`, not starting with `-` or a digit-only name), at most 32
/// bytes. `root` and `nobody` are refused: the point is an unprivileged
/// account of the unit's own.
pub fn check_user(user: &str) -> Result<(), String> {
    let plain = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && !user.chars().all(|c| c.is_ascii_digit())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(format!(
            "--user={user:?} is not a user name (letters, digits, '_', '-', '.'; at most 32)"
        ));
    }
    if matches!(user, "root" | "nobody") {
        return Err(format!(
            "--user={user}: the unit should run as an account of its own, without privileges (useradd --system layer-cake)"
        ));
    }
    Ok(())
}

/// Folders systemd's `ProtectHome=` hides.
const HOMES: &[&str] = &["/home", "/root", "/run/user"];

fn under_homes(path: &Path) -> bool {
    HOMES.iter().any(|h| path.starts_with(h))
}

/// Whether `path` is in a temporary folder, which `PrivateTmp=` would hide.
fn under_tmp(path: &Path) -> bool {
    ["/tmp", "/var/tmp"].iter().any(|t| path.starts_with(t))
}

/// The text of the unit. `program` is the executable to run (host-cake,
/// lan-cake, or layer-cake for a home); `extra` its flags; `user` the
/// account it runs as.
///
/// The unit is hardened as suits a network daemon that needs no privilege:
/// no capabilities and no way to gain any, a read-only view of the system
/// (the home's folder excepted), no home folders (or only the home's own),
/// private `/tmp` and devices, no kernel tunables, modules, logs or clock,
/// only IPv4, IPv6 and Unix sockets, no namespaces, no writable-executable
/// memory, and the system calls of an ordinary service.
pub fn unit(service: &Service, program: &Path, extra: &[String], user: &str) -> String {
    let (description, mut exec) = match service {
        Service::HostCake => (
            "layer-cake host directory (host-cake)".to_owned(),
            vec![program.display().to_string()],
        ),
        Service::LanCake => (
            "layer-cake LAN directory (lan-cake)".to_owned(),
            vec![program.display().to_string()],
        ),
        Service::Home(home) => (
            format!("layer-cake composite process at {}", home.display()),
            vec![
                program.display().to_string(),
                format!("--home-path={}", home.display()),
                "run".into(),
            ],
        ),
    };
    exec.extend(extra.iter().cloned());
    let exec: Vec<String> = exec.iter().map(|w| quote(w)).collect();
    let mut text = format!(
        "[Unit]\n\
         Description={description}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={}\n",
        exec.join(" ")
    );
    if let Service::Home(home) = service
        && let Some(parent) = home.parent()
    {
        text.push_str(&format!(
            "WorkingDirectory={}\n",
            quote(&parent.display().to_string())
        ));
    }
    text.push_str(&format!(
        "# A system account of its own (useradd --system layer-cake), never root.\n\
         User={user}\n\
         UMask=0077\n"
    ));
    text.push_str(
        "# SIGINT is what layer-cake processes stop cleanly on.\n\
         KillSignal=SIGINT\n\
         TimeoutStopSec=30\n\
         Restart=always\n\
         RestartSec=5\n\
         # Hardening: a network daemon that needs no privilege.\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet=\n\
         AmbientCapabilities=\n\
         ProtectSystem=strict\n",
    );
    let mut protect_home = "yes";
    // A home or program in /tmp would vanish behind a private /tmp.
    let private_tmp = match service {
        Service::Home(home) => !under_tmp(home) && !under_tmp(program),
        _ => !under_tmp(program),
    };
    match service {
        Service::Home(home) => {
            let home_text = quote(&home.display().to_string());
            text.push_str(&format!("ReadWritePaths={home_text}\n"));
            if under_homes(home) {
                // Home folders hidden, but for the home's own (and the
                // program's, if it lives in one).
                protect_home = "tmpfs";
                text.push_str(&format!("BindPaths={home_text}\n"));
            }
        }
        Service::HostCake | Service::LanCake => {
            // /var/lib/layer-cake, writable and the user's.
            text.push_str("StateDirectory=layer-cake\nStateDirectoryMode=0700\n");
        }
    }
    if let Some(dir) = program.parent().filter(|d| under_homes(d)) {
        protect_home = "tmpfs";
        text.push_str(&format!(
            "BindReadOnlyPaths={}\n",
            quote(&dir.display().to_string())
        ));
    }
    text.push_str(&format!(
        "ProtectHome={protect_home}\n\
         PrivateTmp={}\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         ProtectProc=invisible\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         SystemCallErrorNumber=EPERM\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        if private_tmp { "yes" } else { "no" }
    ));
    text
}

/// A word for `ExecStart=`, quoted when it needs to be.
fn quote(word: &str) -> String {
    if word
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$' | '%'))
    {
        format!(
            "\"{}\"",
            word.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
                .replace('$', "$$")
        )
    } else {
        word.to_owned()
    }
}

/// Writes the unit into `dir` and says how to enable it (making the user
/// first, and giving it the home).
pub fn install(
    service: &Service,
    program: &Path,
    extra: &[String],
    user: &str,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), String> {
    check_user(user)?;
    let path = dir.join(service.unit_name());
    std::fs::write(&path, unit(service, program, extra, user))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut steps = format!(
        "wrote {}\nit runs as user {user}; if there is no such user yet, make one:\n  \
         useradd --system --no-create-home --shell /usr/sbin/nologin {user}\n",
        path.display()
    );
    if matches!(service, Service::HostCake)
        && !extra.iter().any(|flag| flag.starts_with("--allow-group"))
    {
        // A process trusts a daemon of another user only through a group it
        // names (docs/security.md, "Who may use a daemon").
        steps.push_str(&format!(
            "only processes of {user} and root can use it; to let other users' processes in, \
             add --allow-group={user} to this command, put those users in the group \
             (usermod -aG {user} NAME) and start their processes with --allow-group={user}\n"
        ));
    }
    if let Service::Home(home) = service {
        steps.push_str(&format!(
            "the home must be the user's:\n  chown -R {user}: {}\n",
            quote(&home.display().to_string())
        ));
    }
    steps.push_str(&format!(
        "to start it now and at every boot:\n  systemctl daemon-reload\n  systemctl enable --now {}",
        service.unit_name()
    ));
    writeln!(out, "{steps}").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_cake_unit() {
        let text = unit(
            &Service::HostCake,
            Path::new("/usr/local/bin/host-cake"),
            &["--no-lan-autoconnect".into()],
            DEFAULT_USER,
        );
        assert!(
            text.contains("ExecStart=/usr/local/bin/host-cake --no-lan-autoconnect\n"),
            "{text}"
        );
        assert!(text.contains("KillSignal=SIGINT"));
        assert!(text.contains("WantedBy=multi-user.target"));
    }

    #[test]
    fn a_home_unit_runs_the_home_from_its_folder() {
        let service = Service::Home(PathBuf::from("/srv/my app/.layer-cake"));
        assert_eq!(service.unit_name(), "layer-cake-home-my-app.service");
        let text = unit(&service, Path::new("/usr/local/bin/layer-cake"), &[], "app");
        assert!(
            text.contains(
                "ExecStart=/usr/local/bin/layer-cake \"--home-path=/srv/my app/.layer-cake\" run\n"
            ),
            "{text}"
        );
        assert!(text.contains("WorkingDirectory=\"/srv/my app\""), "{text}");
        assert!(text.contains("\nUser=app\n"), "{text}");
        assert!(
            text.contains("\nReadWritePaths=\"/srv/my app/.layer-cake\"\n"),
            "{text}"
        );
        assert!(text.contains("\nProtectHome=yes\n"), "{text}");
    }

    #[test]
    fn a_home_under_home_is_the_one_home_folder_the_unit_sees() {
        let service = Service::Home(PathBuf::from("/home/ann/app/.layer-cake"));
        let text = unit(&service, Path::new("/home/ann/bin/layer-cake"), &[], "ann");
        for line in [
            "ProtectHome=tmpfs",
            "BindPaths=/home/ann/app/.layer-cake",
            "ReadWritePaths=/home/ann/app/.layer-cake",
            "BindReadOnlyPaths=/home/ann/bin",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}: {text}");
        }
    }

    #[test]
    fn the_user_is_a_plain_name_and_not_root() {
        assert!(check_user("layer-cake").is_ok());
        assert!(check_user("svc_1").is_ok());
        for bad in [
            "",
            "root",
            "nobody",
            "a b",
            "-x",
            "x\ny",
            "123",
            &"u".repeat(33),
        ] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
    }
}
