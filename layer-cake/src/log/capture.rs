//! [`LogCapture`]: an in-memory log writer for tests.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;

/// A shared in-memory buffer that a [`LogLayer`](super::LogLayer) can write
/// to, so a test can read back the lines it produced. Clones share the
/// buffer.
///
/// Use it with `tracing::subscriber::with_default` rather than
/// [`init`](super::init): the global subscriber is shared by every test in
/// a binary.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        LogCapture::default()
    }

    /// Everything written so far (invalid UTF-8 replaced).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    /// The lines written so far, without their newlines.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// Forgets everything written so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock cannot leave a Vec<u8> inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer a [`LogCapture`] hands out: holds the buffer's lock while it
/// lives, so each line lands whole.
#[derive(Debug)]
pub struct CaptureWriter<'a>(MutexGuard<'a, Vec<u8>>);

impl io::Write for CaptureWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.lock())
    }
}
