//! Log lines written into memory, for tests of what a subscriber writes (and what it must never
//! write: values made from persons counts, patients' numbers). Give a clone to a `tracing`
//! subscriber as its writer (`with_writer(move || lines.clone())`), then read [`Captured::text`].

use std::sync::{Arc, Mutex};

/// What the writers cloned from one `Captured` wrote, in order.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("log lines are UTF-8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
