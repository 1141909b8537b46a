//! Prompt sources: synthetic prompts of a requested token length, or prompts
//! read from a dataset file (JSONL `{"prompt": ...}` lines or ShareGPT).
//!
//! A [`PromptSource`] is built once per burst and then asked for prompt
//! number `index` by the workers. The answer is deterministic for a given
//! seed and index, so a run can be reproduced and its artifacts recomputed.
//!
//! Token counts come from a HF `tokenizer.json` when one is given
//! (`--tokenizer`, counted with the tokenizer's special tokens such as BOS,
//! as the server counts a completions prompt) and are then exact; without
//! one they are approximations (one word ≈ one token) and marked as such.
//! Chat endpoints wrap the prompt in a chat template, so the server's
//! `prompt_tokens` is larger than `input_tokens` there.

mod dataset;
mod length;
mod synthetic;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokenizers::Tokenizer;

pub use length::{LengthSpec, MAX_INPUT_TOKENS};

use synthetic::Synthetic;

/// One prompt to send, with its length in tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Prompt {
    pub text: String,
    /// Tokens in `text`: counted by the tokenizer when `tokens_exact`, else estimated.
    pub input_tokens: u32,
    pub tokens_exact: bool,
}

/// Layout of a dataset file.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// Decide from the content.
    #[default]
    Auto,
    /// One JSON object per line with a "prompt" (or "text") string.
    Jsonl,
    /// Objects with "conversations": [{"from": "human", "value": ...}, ...], as a JSON array or JSONL.
    Sharegpt,
}

impl DatasetFormat {
    fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Auto => "auto",
            DatasetFormat::Jsonl => "jsonl",
            DatasetFormat::Sharegpt => "sharegpt",
        }
    }
}

/// A dataset record that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedLine {
    /// 1-based line number (for a JSON array: the line where the element starts).
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for SkippedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("invalid --input-tokens {value:?}: {reason}")]
    InvalidLength { value: String, reason: String },
    #[error("--input-tokens sets synthetic prompts and cannot be combined with --dataset {}", path.display())]
    LengthWithDataset { path: PathBuf },
    #[error("cannot read dataset {}: {reason}", path.display())]
    DatasetRead { path: PathBuf, reason: String },
    #[error("dataset {} line {line}: {reason}", path.display())]
    DatasetSyntax { path: PathBuf, line: usize, reason: String },
    #[error("dataset {}: no usable prompts{}", path.display(), empty_detail(*skipped, first_skip.as_ref()))]
    EmptyDataset { path: PathBuf, skipped: usize, first_skip: Option<SkippedLine> },
    #[error("cannot load tokenizer {}: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
}

fn empty_detail(skipped: usize, first: Option<&SkippedLine>) -> String {
    match first {
        None => " (the file has no records)".to_string(),
        Some(first) => format!(" ({skipped} records skipped; first at {first})"),
    }
}

impl PromptError {
    /// Bounded label for metrics and logs.
    pub fn as_label(&self) -> &'static str {
        match self {
            PromptError::InvalidLength { .. } => "invalid_length",
            PromptError::LengthWithDataset { .. } => "length_with_dataset",
            PromptError::DatasetRead { .. } => "dataset_read",
            PromptError::DatasetSyntax { .. } => "dataset_syntax",
            PromptError::EmptyDataset { .. } => "dataset_empty",
            PromptError::Tokenizer { .. } => "tokenizer",
        }
    }
}

/// Load a HF `tokenizer.json`. Truncation and padding settings in the file are
/// switched off: they would distort the counts.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, PromptError> {
    let err = |reason: String| PromptError::Tokenizer { path: path.to_path_buf(), reason };
    if !path.is_file() {
        return Err(err(if path.exists() { "not a file".into() } else { "no such file".into() }));
    }
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
    tokenizer.with_truncation(None).map_err(|e| err(e.to_string()))?;
    tokenizer.with_padding(None);
    // A tokenizer that cannot encode plain English is of no use here: say so now.
    count_tokens(&tokenizer, "the quick brown fox")
        .ok_or_else(|| err("it cannot encode a plain English sentence".into()))?;
    Ok(tokenizer)
}

/// Tokens in `text` including the special tokens the tokenizer adds (e.g. BOS).
fn count_tokens(tokenizer: &Tokenizer, text: &str) -> Option<u32> {
    let encoding = tokenizer.encode_fast(text, true).ok()?;
    Some(u32::try_from(encoding.len()).unwrap_or(u32::MAX))
}

/// Estimated tokens of a dataset prompt without a tokenizer: whitespace-separated
/// words, where a word of CJK characters counts one per character.
fn approx_tokens(text: &str) -> u32 {
    let n: usize = text.split_whitespace().map(|w| w.chars().filter(|&c| is_cjk(c)).count().max(1)).sum();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // Hiragana, Katakana
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0x20000..=0x2FFFF) // CJK Extensions B..
}

/// Prompts for a burst: synthetic or from a dataset. Cheap to share (`Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct PromptSource {
    inner: Inner,
    /// File name of the tokenizer, for `describe`.
    tokenizer_name: Option<String>,
}

#[derive(Clone)]
enum Inner {
    Synthetic(Synthetic),
    Dataset(Arc<Dataset>),
}

struct Dataset {
    name: String,
    format: DatasetFormat,
    prompts: Vec<String>,
    /// Tokenizer counts, computed on first use of each prompt.
    counts: Vec<OnceLock<Option<u32>>>,
    skipped: Vec<SkippedLine>,
    tokenizer: Option<Arc<Tokenizer>>,
}

impl PromptSource {
    /// Build the source a workload describes: a dataset when `dataset` is set,
    /// else synthetic prompts of `input_tokens` (default 128) tokens.
    pub fn from_workload(w: &crate::workload::Workload) -> Result<PromptSource, PromptError> {
        let tokenizer = w.tokenizer.as_deref().map(load_tokenizer).transpose()?;
        let mut source = match &w.dataset {
            Some(path) => {
                if w.input_tokens.is_some() {
                    return Err(PromptError::LengthWithDataset { path: path.clone() });
                }
                PromptSource::dataset(path, w.dataset_format, tokenizer)?
            }
            None => PromptSource::synthetic(w.input_tokens.unwrap_or_default(), w.seed, tokenizer),
        };
        source.tokenizer_name = w.tokenizer.as_deref().map(file_name);
        Ok(source)
    }

    /// Synthetic prompts of `len` tokens made of common English words, distinct per
    /// index and reproducible from `seed`. With a tokenizer each prompt is fitted
    /// to the exact token count (one or two encodes per prompt in the usual case).
    pub fn synthetic(len: LengthSpec, seed: u64, tokenizer: Option<Tokenizer>) -> PromptSource {
        let inner = Inner::Synthetic(Synthetic::new(len, seed, tokenizer.map(Arc::new)));
        PromptSource { inner, tokenizer_name: None }
    }

    /// Prompts read from a dataset file; bad records are skipped and reported by
    /// [`skipped_lines`](Self::skipped_lines). Prompts are served in file order, cycling.
    pub fn dataset(
        path: &Path,
        format: DatasetFormat,
        tokenizer: Option<Tokenizer>,
    ) -> Result<PromptSource, PromptError> {
        let bytes = std::fs::read(path)
            .map_err(|e| PromptError::DatasetRead { path: path.to_path_buf(), reason: io_reason(&e) })?;
        let parsed = dataset::parse(&bytes, format).map_err(|(line, reason)| PromptError::DatasetSyntax {
            path: path.to_path_buf(),
            line,
            reason,
        })?;
        if parsed.prompts.is_empty() {
            return Err(PromptError::EmptyDataset {
                path: path.to_path_buf(),
                skipped: parsed.skipped.len(),
                first_skip: parsed.skipped.first().cloned(),
            });
        }
        let counts = parsed.prompts.iter().map(|_| OnceLock::new()).collect();
        let dataset = Dataset {
            name: file_name(path),
            format: parsed.format,
            prompts: parsed.prompts,
            counts,
            skipped: parsed.skipped,
            tokenizer: tokenizer.map(Arc::new),
        };
        Ok(PromptSource { inner: Inner::Dataset(Arc::new(dataset)), tokenizer_name: None })
    }

    /// Prompt number `index` (deterministic for a given seed/index; datasets cycle).
    pub fn get(&self, index: u64) -> Prompt {
        match &self.inner {
            Inner::Synthetic(s) => s.prompt(index),
            Inner::Dataset(d) => d.prompt(index),
        }
    }

    /// One line for the run summary.
    pub fn describe(&self) -> String {
        let tokenizer = || match &self.tokenizer_name {
            Some(name) => format!("exact, tokenizer {name}"),
            None => "exact, tokenizer".to_string(),
        };
        match &self.inner {
            Inner::Synthetic(s) => {
                let counting = if s.has_tokenizer() { tokenizer() } else { "approximate, 1 word ≈ 1 token".into() };
                format!("synthetic, {} tokens ({counting})", s.len())
            }
            Inner::Dataset(d) => {
                let counting = if d.tokenizer.is_some() { tokenizer() } else { "approximate, from words".into() };
                format!(
                    "dataset {} ({}): {} prompts, {} lines skipped; token counts {counting}",
                    d.name,
                    d.format.as_str(),
                    d.prompts.len(),
                    d.skipped.len()
                )
            }
        }
    }

    /// Dataset records that were skipped (line number + reason); empty for synthetic prompts.
    pub fn skipped_lines(&self) -> &[SkippedLine] {
        match &self.inner {
            Inner::Synthetic(_) => &[],
            Inner::Dataset(d) => &d.skipped,
        }
    }

    /// Whether token counts come from a tokenizer (synthetic prompts may still miss an
    /// exact fit for odd tokenizers; each [`Prompt::tokens_exact`] tells).
    pub fn is_exact(&self) -> bool {
        match &self.inner {
            Inner::Synthetic(s) => s.has_tokenizer(),
            Inner::Dataset(d) => d.tokenizer.is_some(),
        }
    }

    /// Number of distinct prompts before the source cycles (`None`: synthetic, no cycle).
    pub fn distinct_prompts(&self) -> Option<usize> {
        match &self.inner {
            Inner::Synthetic(_) => None,
            Inner::Dataset(d) => Some(d.prompts.len()),
        }
    }
}

impl fmt::Debug for PromptSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptSource").field("describe", &self.describe()).finish()
    }
}

impl Dataset {
    fn prompt(&self, index: u64) -> Prompt {
        // `prompts` is never empty (checked at load); the modulo keeps any index in range.
        let len = self.prompts.len().max(1) as u64;
        let i = usize::try_from(index % len).unwrap_or(0);
        let Some(text) = self.prompts.get(i) else {
            return Prompt { text: String::new(), input_tokens: 0, tokens_exact: false };
        };
        let exact = self.tokenizer.as_ref().and_then(|tok| {
            let slot = self.counts.get(i)?;
            *slot.get_or_init(|| count_tokens(tok, text))
        });
        match exact {
            Some(n) => Prompt { text: text.clone(), input_tokens: n, tokens_exact: true },
            None => Prompt { text: text.clone(), input_tokens: approx_tokens(text), tokens_exact: false },
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
