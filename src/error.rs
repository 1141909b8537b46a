//! Library errors. Each maps to an exit code at the CLI edge and to a
//! bounded label when exported.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Flags, config or files the user gave are wrong: nothing was sent.
    #[error("{0}")]
    BadInput(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("could not start the simulator: {0}")]
    Simulator(String),
}

impl RunError {
    pub fn as_label(&self) -> &'static str {
        match self {
            RunError::BadInput(_) => "bad_input",
            RunError::Write { .. } => "write",
            RunError::Simulator(_) => "simulator",
        }
    }
}

impl From<crate::workload::prompts::PromptError> for RunError {
    fn from(e: crate::workload::prompts::PromptError) -> Self {
        RunError::BadInput(e.to_string())
    }
}

/// An error and its sources, `outer: inner: innermost` (reqwest's own Display says only
/// "builder error" and keeps the reason in its source).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

/// reqwest's Display hides the cause chain ("error sending request"); walk it.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(u) = e.url() {
        // The URL is noise in every message (and may hold a password).
        msg = msg.replace(&format!(" for url ({u})"), "").replace(&format!(" ({u})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    // Whatever a cause printed of the URL, never its password.
    match e.url().and_then(|u| u.password()) {
        Some(pw) if !pw.is_empty() => msg.replace(pw, "***"),
        _ => msg,
    }
}
