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

/// The text of the unit. `program` is the executable to run (host-cake,
/// lan-cake, or layer-cake for a home); `extra` its flags.
pub fn unit(service: &Service, program: &Path, extra: &[String]) -> String {
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
    text.push_str(
        "# SIGINT is what layer-cake processes stop cleanly on.\n\
         KillSignal=SIGINT\n\
         TimeoutStopSec=30\n\
         Restart=always\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
    );
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

/// Writes the unit into `dir` and says how to enable it.
pub fn install(
    service: &Service,
    program: &Path,
    extra: &[String],
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), String> {
    let path = dir.join(service.unit_name());
    std::fs::write(&path, unit(service, program, extra))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(
        out,
        "wrote {}\nto start it now and at every boot:\n  systemctl daemon-reload\n  systemctl enable --now {}",
        path.display(),
        service.unit_name()
    )
    .map_err(|e| e.to_string())
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
        let text = unit(&service, Path::new("/usr/local/bin/layer-cake"), &[]);
        assert!(
            text.contains(
                "ExecStart=/usr/local/bin/layer-cake \"--home-path=/srv/my app/.layer-cake\" run\n"
            ),
            "{text}"
        );
        assert!(text.contains("WorkingDirectory=\"/srv/my app\""), "{text}");
    }
}
