//! Rolling log files: what a background process writes to stderr, kept in
//! a folder of files that roll over by line count.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Lines per file before the next one starts.
pub const LINES_PER_FILE: usize = 16_384;

/// Files kept; the oldest beyond this are deleted.
pub const FILES_KEPT: usize = 32;

/// Sends this process's stderr — its own log lines and everything its child
/// processes' lines copied there — to rolling files in `dir`: a new file
/// every [`LINES_PER_FILE`] lines, named by the UTC time it starts
/// (`2026-11-23T16-45-14.123.log`, so names sort by time), and no more than
/// [`FILES_KEPT`] of them.
///
/// Used by a process started in the background (`--origin=START`, as
/// `layer-cake start` starts group-cake) or with `--keep-logs` as a role of
/// a home. Lines are written as they come, so a process that is killed
/// loses none that it wrote.
pub fn redirect_stderr(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (read, write) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    nix::unistd::dup2(write.as_raw_fd(), 2).map_err(std::io::Error::from)?;
    drop(write);
    let dir = dir.to_path_buf();
    let mut first = Roller::open(&dir)?;
    std::thread::Builder::new()
        .name("rolling-log".into())
        .spawn(move || {
            let mut lines = BufReader::new(File::from(read));
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => first.write(&line),
                }
            }
        })?;
    Ok(())
}

struct Roller {
    dir: PathBuf,
    file: File,
    lines: usize,
}

impl Roller {
    fn open(dir: &Path) -> std::io::Result<Roller> {
        let name = chrono::Utc::now()
            .format("%Y-%m-%dT%H-%M-%S%.3f.log")
            .to_string();
        let file = File::options()
            .create(true)
            .append(true)
            .open(dir.join(name))?;
        prune(dir);
        Ok(Roller {
            dir: dir.to_path_buf(),
            file,
            lines: 0,
        })
    }

    fn write(&mut self, line: &[u8]) {
        if self.lines >= LINES_PER_FILE
            && let Ok(next) = Roller::open(&self.dir)
        {
            *self = next;
        }
        let _ = self.file.write_all(line);
        if !line.ends_with(b"\n") {
            let _ = self.file.write_all(b"\n");
        }
        self.lines += 1;
    }
}

/// Deletes the oldest `.log` files beyond [`FILES_KEPT`].
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(FILES_KEPT);
    for old in &files[..excess] {
        let _ = std::fs::remove_file(old);
    }
}
