use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::workload::Workload;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prompts").join(name)
}

fn tokenizer(name: &str) -> Tokenizer {
    match load_tokenizer(&fixture(name)) {
        Ok(t) => t,
        Err(e) => panic!("fixture tokenizer: {e}"),
    }
}

fn source(args: Workload) -> PromptSource {
    match PromptSource::from_workload(&args) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn error(args: Workload) -> PromptError {
    match PromptSource::from_workload(&args) {
        Ok(s) => panic!("expected an error, got {}", s.describe()),
        Err(e) => e,
    }
}

fn synthetic_args(input_tokens: &str, seed: u64) -> Workload {
    Workload { input_tokens: Some(input_tokens.parse().unwrap()), seed, ..Workload::default() }
}

fn dataset_args(path: &Path) -> Workload {
    Workload { dataset: Some(path.to_path_buf()), ..Workload::default() }
}

/// A temporary dataset file with `content`.
fn temp_dataset(content: &str) -> tempfile::NamedTempFile {
    let mut file = match tempfile::NamedTempFile::new() {
        Ok(f) => f,
        Err(e) => panic!("tempfile: {e}"),
    };
    if let Err(e) = file.write_all(content.as_bytes()) {
        panic!("write: {e}");
    }
    file
}

fn count(tok: &Tokenizer, text: &str) -> u32 {
    count_tokens(tok, text).unwrap_or(u32::MAX)
}

#[test]
fn prompt_source_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<PromptSource>();
}

#[test]
fn defaults_are_synthetic_128_approximate() {
    let s = source(Workload::default());
    let p = s.get(0);
    assert_eq!(p.input_tokens, 128);
    assert!(!p.tokens_exact);
    assert!(!s.is_exact());
    assert_eq!(s.describe(), "synthetic, 128 tokens (approximate, 1 word ≈ 1 token)");
    assert!(s.skipped_lines().is_empty());
    assert_eq!(s.distinct_prompts(), None);
}

#[test]
fn synthetic_is_deterministic_per_seed() {
    let a = source(synthetic_args("64", 7));
    let b = source(synthetic_args("64", 7));
    let c = source(synthetic_args("64", 8));
    for i in [0, 1, 2, 1000, u64::MAX] {
        assert_eq!(a.get(i), b.get(i), "index {i}");
        assert_ne!(a.get(i).text, c.get(i).text, "index {i}: seeds 7 and 8 gave the same prompt");
    }
    // Asking again, or out of order, gives the same answer.
    assert_eq!(a.get(5), a.get(5));
}

#[test]
fn synthetic_prompts_are_distinct_from_the_first_word() {
    let s = source(synthetic_args("32", 0));
    let prompts: Vec<Prompt> = (0..2000).map(|i| s.get(i)).collect();
    let texts: HashSet<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts.len(), prompts.len());
    // Neighbouring prompts differ in their first word: no shared prefix-cache block.
    for pair in prompts.windows(2) {
        let first = |p: &Prompt| p.text.split(' ').next().map(str::to_string);
        assert_ne!(first(&pair[0]), first(&pair[1]));
    }
}

#[test]
fn synthetic_word_count_approximates_the_length() {
    for n in [1u32, 2, 5, 100, 128, 1000] {
        let s = PromptSource::synthetic(LengthSpec::Fixed(n), 3, None);
        for i in 0..20 {
            let p = s.get(i);
            let words = p.text.split_whitespace().count() as f64;
            assert!((words - f64::from(n)).abs() <= f64::from(n) * 0.1, "n={n} words={words}");
            assert_eq!(p.input_tokens, n);
            assert!(p.text.split_whitespace().all(|w| synthetic::WORDS.contains(&w)), "{}", p.text);
        }
    }
}

#[test]
fn synthetic_range_draws_lengths_reproducibly() {
    let s = source(synthetic_args("10..20", 1));
    let lengths: Vec<u32> = (0..500).map(|i| s.get(i).input_tokens).collect();
    assert!(lengths.iter().all(|n| (10..=20).contains(n)));
    assert!(lengths.contains(&10) && lengths.contains(&20), "the range bounds are inclusive");
    for i in 0..500 {
        let p = s.get(i);
        assert_eq!(p.text.split_whitespace().count() as u32, p.input_tokens);
    }
    assert_eq!(s.describe(), "synthetic, 10..20 tokens (approximate, 1 word ≈ 1 token)");
}

#[test]
fn bad_length_is_an_error_naming_the_flag() {
    for bad in ["0", "20..10", "lots"] {
        let e = bad.parse::<LengthSpec>().unwrap_err();
        assert!(matches!(e, PromptError::InvalidLength { .. }));
        assert!(e.to_string().contains("--input-tokens"), "{e}");
    }
}

#[test]
fn exact_lengths_with_a_wordlevel_tokenizer() {
    let args = Workload {
        input_tokens: Some("2..300".parse().unwrap()),
        tokenizer: Some(fixture("wordlevel-tokenizer.json")),
        ..Workload::default()
    };
    let s = source(args);
    assert!(s.is_exact());
    assert_eq!(s.describe(), "synthetic, 2..300 tokens (exact, tokenizer wordlevel-tokenizer.json)");
    let tok = tokenizer("wordlevel-tokenizer.json");
    for i in 0..200 {
        let p = s.get(i);
        assert!(p.tokens_exact, "index {i}: {p:?}");
        assert_eq!(count(&tok, &p.text), p.input_tokens, "index {i}");
    }
    // With BOS counted, N tokens are N - 1 words.
    let p = PromptSource::synthetic(LengthSpec::Fixed(50), 0, Some(tok.clone())).get(0);
    assert_eq!((p.input_tokens, p.text.split_whitespace().count()), (50, 49));
    // One token is all BOS: no text fits, the closest is one word (2 tokens), flagged as inexact.
    let p = PromptSource::synthetic(LengthSpec::Fixed(1), 0, Some(tok)).get(0);
    assert_eq!((p.input_tokens, p.tokens_exact, p.text.split_whitespace().count()), (2, false, 1));
}

#[test]
fn exact_lengths_with_multi_token_words() {
    // Most words cost several tokens in this tokenizer: the search and the fillers do the work.
    let tok = tokenizer("char-bpe-tokenizer.json");
    assert_eq!(count(&tok, "water"), 6, "the fixture splits words into letters (plus BOS)");
    let s = PromptSource::synthetic(LengthSpec::Uniform { min: 2, max: 400 }, 11, Some(tok.clone()));
    for i in 0..200 {
        let p = s.get(i);
        assert!(p.tokens_exact, "index {i}: {p:?}");
        assert_eq!(count(&tok, &p.text), p.input_tokens);
    }
    // Tiny prompts (a word or two) may coincide; prompts long enough for the index prefix do not.
    let s = PromptSource::synthetic(LengthSpec::Fixed(64), 11, Some(tok));
    let texts: HashSet<String> = (0..200).map(|i| s.get(i).text).collect();
    assert_eq!(texts.len(), 200);
}

/// Needs the real vLLM install (`scripts/test.sh` sets it up and runs ignored tests).
#[test]
#[ignore = "needs /var/tmp/real-vllm: run scripts/test.sh"]
fn exact_lengths_with_the_real_llama_tokenizer() {
    let home = std::env::var("REAL_VLLM_HOME").unwrap_or_else(|_| "/var/tmp/real-vllm".into());
    let path = Path::new(&home).join("model/tokenizer.json");
    let path = path.as_path();
    assert!(path.is_file(), "{} is absent: run ../shared/real-vllm/setup.sh", path.display());
    let tok = match load_tokenizer(path) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let s = PromptSource::synthetic(LengthSpec::Uniform { min: 1, max: 2048 }, 0, Some(tok.clone()));
    for i in 0..50 {
        let p = s.get(i);
        assert!(p.tokens_exact || p.input_tokens <= 2, "index {i}: {} tokens, inexact", p.input_tokens);
        assert_eq!(count(&tok, &p.text), p.input_tokens);
    }
}

#[test]
fn jsonl_dataset_skips_bad_lines_with_numbers() {
    let s = source(dataset_args(&fixture("prompts.jsonl")));
    assert_eq!(s.distinct_prompts(), Some(3));
    let skipped: Vec<usize> = s.skipped_lines().iter().map(|l| l.line).collect();
    assert_eq!(skipped, vec![4, 5, 6]);
    assert!(s.skipped_lines()[0].reason.starts_with("not valid JSON"));
    assert_eq!(s.skipped_lines()[1].reason, "empty prompt");
    assert_eq!(s.skipped_lines()[2].reason, "no \"prompt\" or \"text\" field");
    assert_eq!(s.get(0).text, "Explain the difference between a process and a thread.");
    assert_eq!(s.get(1).text, "Write a haiku about load testing.");
    assert_eq!(s.get(2).text, "Summarise the plot of Hamlet in three sentences.");
    // Datasets cycle.
    assert_eq!(s.get(3), s.get(0));
    assert_eq!(s.get(u64::MAX), s.get(u64::MAX % 3));
    let p = s.get(0);
    assert_eq!((p.input_tokens, p.tokens_exact), (9, false));
    assert_eq!(
        s.describe(),
        "dataset prompts.jsonl (jsonl): 3 prompts, 3 lines skipped; token counts approximate, from words"
    );
}

#[test]
fn sharegpt_array_takes_the_first_human_turn() {
    let s = source(dataset_args(&fixture("sharegpt.json")));
    assert_eq!(s.distinct_prompts(), Some(2));
    assert_eq!(s.get(0).text, "What is the capital of France?");
    assert_eq!(s.get(1).text, "Name three prime numbers.");
    assert_eq!(s.skipped_lines(), &[SkippedLine { line: 9, reason: "no human turn in \"conversations\"".into() }]);
    assert!(s.describe().starts_with("dataset sharegpt.json (sharegpt): 2 prompts, 1 lines skipped"));
}

#[test]
fn sharegpt_jsonl_is_detected() {
    let s = source(dataset_args(&fixture("sharegpt.jsonl")));
    assert!(s.describe().contains("(sharegpt)"), "{}", s.describe());
    assert_eq!(s.distinct_prompts(), Some(2));
    assert_eq!(s.get(1).text, "Translate 'good morning' into German.");
    let skipped: Vec<usize> = s.skipped_lines().iter().map(|l| l.line).collect();
    assert_eq!(skipped, vec![2]);
}

#[test]
fn explicit_format_is_obeyed() {
    // Told it is ShareGPT, a prompt JSONL file has no usable record.
    let args = Workload { dataset_format: DatasetFormat::Sharegpt, ..dataset_args(&fixture("prompts.jsonl")) };
    let e = error(args);
    assert!(matches!(e, PromptError::EmptyDataset { skipped: 6, .. }), "{e:?}");
    assert!(e.to_string().contains("line 1: no \"conversations\" field"), "{e}");
}

#[test]
fn dataset_counts_are_exact_with_a_tokenizer() {
    let args =
        Workload { tokenizer: Some(fixture("wordlevel-tokenizer.json")), ..dataset_args(&fixture("prompts.jsonl")) };
    let s = source(args);
    assert!(s.is_exact());
    // "Write a haiku about load testing." -> Write a haiku about load testing . + BOS
    let p = s.get(1);
    assert_eq!((p.input_tokens, p.tokens_exact), (8, true));
    assert!(s.describe().ends_with("token counts exact, tokenizer wordlevel-tokenizer.json"), "{}", s.describe());
}

#[test]
fn empty_datasets_are_errors() {
    for content in ["", "\n\n  \n", "[]", "not json\n{\"prompt\": \"\"}\n"] {
        let file = temp_dataset(content);
        let e = error(dataset_args(file.path()));
        assert!(matches!(e, PromptError::EmptyDataset { .. }), "{content:?}: {e:?}");
        assert!(e.to_string().contains(&file.path().display().to_string()), "{e}");
    }
    let file = temp_dataset("not json\n{\"prompt\": \"\"}\n");
    let e = error(dataset_args(file.path())).to_string();
    assert!(e.contains("2 records skipped; first at line 1: not valid JSON"), "{e}");
}

#[test]
fn truncated_array_is_an_error_with_its_line() {
    let file = temp_dataset("\n[{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]},\n");
    let e = error(dataset_args(file.path()));
    assert!(matches!(e, PromptError::DatasetSyntax { line: 2, .. }), "{e:?}");
}

#[test]
fn missing_files_are_errors_naming_the_path() {
    let e = error(dataset_args(Path::new("/nonexistent/prompts.jsonl")));
    assert!(matches!(e, PromptError::DatasetRead { .. }));
    assert_eq!(e.to_string(), "cannot read dataset /nonexistent/prompts.jsonl: no such file");
    assert_eq!(e.as_label(), "dataset_read");

    let args = Workload { tokenizer: Some("/nonexistent/tokenizer.json".into()), ..Workload::default() };
    assert_eq!(error(args).to_string(), "cannot load tokenizer /nonexistent/tokenizer.json: no such file");
}

#[test]
fn invalid_tokenizer_is_an_error() {
    let file = temp_dataset("{\"prompt\": \"this is a dataset, not a tokenizer\"}\n");
    let args = Workload { tokenizer: Some(file.path().to_path_buf()), ..Workload::default() };
    let e = error(args);
    assert!(matches!(e, PromptError::Tokenizer { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&format!("cannot load tokenizer {}: ", file.path().display())), "{e}");
}

#[test]
fn input_tokens_and_dataset_conflict() {
    let args = Workload { input_tokens: Some(LengthSpec::Fixed(64)), ..dataset_args(&fixture("prompts.jsonl")) };
    assert!(matches!(error(args), PromptError::LengthWithDataset { .. }));
}

#[test]
fn approx_tokens_counts_words_and_cjk_characters() {
    assert_eq!(approx_tokens("hello  world\n again"), 3);
    assert_eq!(approx_tokens("你好世界 ok"), 5);
    assert_eq!(approx_tokens(""), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn length_parsing_never_panics(s in ".*") {
        let _ = s.parse::<LengthSpec>();
    }

    #[test]
    fn length_parsing_never_panics_on_range_like_input(s in "[0-9 .=-]{0,24}") {
        if let Ok(spec) = s.parse::<LengthSpec>() {
            let (min, max) = match spec {
                LengthSpec::Fixed(n) => (n, n),
                LengthSpec::Uniform { min, max } => (min, max),
            };
            prop_assert!(1 <= min && min <= max && max <= MAX_INPUT_TOKENS);
        }
    }

    #[test]
    fn get_never_panics(index in any::<u64>(), seed in any::<u64>(), min in 1u32..40, extra in 0u32..40) {
        let len = LengthSpec::Uniform { min, max: min + extra };
        let p = PromptSource::synthetic(len, seed, None).get(index);
        prop_assert!(p.input_tokens >= min && p.input_tokens <= min + extra);
        let p = PromptSource::synthetic(len, seed, Some(tokenizer("char-bpe-tokenizer.json"))).get(index);
        prop_assert!(!p.text.is_empty());
        let _ = PromptSource::synthetic(LengthSpec::Fixed(0), seed, None).get(index);
        let _ = source(dataset_args(&fixture("sharegpt.json"))).get(index);
    }
}
