//! Synthetic prompts: random common English words.
//!
//! Approximation without a tokenizer: one word ≈ one token. The words below are
//! among the most frequent in English and are single tokens (with their leading
//! space) in the BPE vocabularies of the common model families (GPT-2/tiktoken,
//! Llama 2 and 3, Mistral, Qwen), so a prompt of N words is about N tokens plus
//! the tokenizer's special tokens (BOS).
//!
//! Distinctness: the first words of prompt `index` spell `index + offset(seed)` in
//! base `pool.len()`, least significant digit first, so two prompts of one source
//! differ from their first word on (no shared prefix-cache block), for 2^32
//! consecutive indices. The rest is drawn from an RNG seeded with (seed, index).
//!
//! With a tokenizer: at construction each word's cost in tokens is measured
//! (~600 short encodes, a few ms); prompts are drawn from the words that are one
//! token both first and after a space, so `N - specials` words is usually an exact
//! fit, verified with one encode of the prompt (the cost of `get`: ~150 µs for
//! 128 tokens, ~5 ms for 4096). Otherwise a short search (secant/bisection steps
//! on the word count, then filler words costing the remaining gap) finds the exact
//! length, or the closest one with `tokens_exact = false` (e.g. 1 token when the
//! tokenizer adds a BOS).

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokenizers::Tokenizer;

use super::{LengthSpec, MAX_INPUT_TOKENS, Prompt, count_tokens};

/// Common English words, lowercase, distinct.
#[rustfmt::skip]
pub(super) const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his",
    "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all",
    "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their",
    "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would",
    "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no",
    "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find",
    "long", "down", "day", "did", "get", "come", "made", "may", "part", "over", "new", "sound", "take", "only",
    "little", "work", "know", "place", "year", "live", "me", "back", "give", "most", "very", "after", "thing",
    "our", "just", "name", "good", "man", "think", "say", "great", "where", "help", "through", "much", "before",
    "line", "right", "too", "mean", "old", "any", "same", "tell", "boy", "follow", "came", "want", "show", "also",
    "around", "form", "three", "small", "set", "put", "end", "does", "another", "well", "large", "must", "big",
    "even", "such", "because", "turn", "here", "why", "ask", "went", "men", "read", "need", "land", "different",
    "home", "us", "move", "try", "kind", "hand", "picture", "again", "change", "off", "play", "spell", "air",
    "away", "animal", "house", "point", "page", "letter", "mother", "answer", "found", "study", "still", "learn",
    "should", "world", "high", "every", "near", "add", "food", "between", "own", "below", "country", "plant",
    "last", "school", "father", "keep", "tree", "never", "start", "city", "earth", "eye", "light", "thought",
    "head", "under", "story", "saw", "left", "few", "while", "along", "might", "close", "something", "seem", "next",
    "hard", "open", "example", "begin", "life", "always", "those", "both", "paper", "together", "got", "group",
    "often", "run", "important", "until", "children", "side", "feet", "car", "mile", "night", "walk", "white",
    "sea", "began", "grow", "took", "river", "four", "carry", "state", "once", "book", "hear", "stop", "without",
    "second", "later", "miss", "idea",
];

/// Fewest one-token words for which the tokenizer's unit-word pool is used.
const MIN_UNIT_POOL: usize = 16;
/// Encodes spent on the word-count search before filling the last gap.
const MAX_SEARCH_STEPS: usize = 8;
/// Encodes spent on filler words.
const MAX_FILL_TRIES: usize = 24;

#[derive(Clone)]
pub(super) struct Synthetic {
    len: LengthSpec,
    seed: u64,
    /// Offset added to the index before spelling it as the prefix.
    offset: u64,
    /// Words drawn from.
    pool: Vec<&'static str>,
    fit: Option<Fit>,
}

/// What is needed to fit prompts to an exact token count.
#[derive(Clone)]
struct Fit {
    tokenizer: Arc<Tokenizer>,
    /// Tokens the tokenizer adds to any text (e.g. BOS).
    specials: u32,
    /// The cheapest word of each cost (cost ascending), to close the last gap.
    fillers: Vec<(u32, &'static str)>,
}

impl Synthetic {
    pub(super) fn new(len: LengthSpec, seed: u64, tokenizer: Option<Arc<Tokenizer>>) -> Synthetic {
        let offset = splitmix64(seed ^ 0x5851_f42d_4c95_7f2d);
        let Some(tokenizer) = tokenizer else {
            return Synthetic { len, seed, offset, pool: WORDS.to_vec(), fit: None };
        };
        let specials = count_tokens(&tokenizer, "").unwrap_or(0);
        let count = |text: &str| count_tokens(&tokenizer, text);
        // Cost of a word in the middle of a text, tokens("the w") - tokens("the"), and at its start.
        let base = count("the").unwrap_or(0);
        let mut costed: Vec<(u32, u32, &'static str)> = WORDS
            .iter()
            .filter_map(|&w| {
                let middle = count(&format!("the {w}"))?.checked_sub(base)?;
                let first = count(w)?.checked_sub(specials)?;
                Some((middle, first, w))
            })
            .collect();
        // Prefer words of one token wherever they stand, then words of one token after a space.
        let unit_anywhere: Vec<&'static str> =
            costed.iter().filter(|&&(m, f, _)| m == 1 && f == 1).map(|&(_, _, w)| w).collect();
        let unit_middle: Vec<&'static str> = costed.iter().filter(|&&(m, _, _)| m == 1).map(|&(_, _, w)| w).collect();
        let pool = if unit_anywhere.len() >= MIN_UNIT_POOL {
            unit_anywhere
        } else if unit_middle.len() >= MIN_UNIT_POOL {
            unit_middle
        } else {
            WORDS.to_vec()
        };
        // Stable sort: among equal costs the list's (frequency) order decides.
        costed.sort_by_key(|&(m, _, _)| m);
        let mut fillers: Vec<(u32, &'static str)> =
            costed.iter().filter(|&&(m, _, _)| m >= 1).map(|&(m, _, w)| (m, w)).collect();
        fillers.dedup_by_key(|&mut (m, _)| m);
        Synthetic { len, seed, offset, pool, fit: Some(Fit { tokenizer, specials, fillers }) }
    }

    pub(super) fn len(&self) -> LengthSpec {
        self.len
    }

    pub(super) fn has_tokenizer(&self) -> bool {
        self.fit.is_some()
    }

    pub(super) fn prompt(&self, index: u64) -> Prompt {
        let mut rng = StdRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(index)));
        let target = self.len.sample(&mut rng);
        let mut words = Words::new(rng, &self.pool, index.wrapping_add(self.offset));
        match &self.fit {
            None => Prompt { text: words.text(target as usize), input_tokens: target, tokens_exact: false },
            Some(fit) => fit.fit(&mut words, target),
        }
    }
}

impl Fit {
    fn count(&self, text: &str) -> Option<u32> {
        count_tokens(&self.tokenizer, text)
    }

    /// The prompt of exactly `target` tokens, or the closest one found.
    fn fit(&self, words: &mut Words<'_>, target: u32) -> Prompt {
        let mut best = Best::default();
        // Most words known to be too short (with their count), fewest words known to be too long.
        let mut lo: Option<(usize, u32)> = None;
        let mut hi: Option<usize> = None;
        let cap = 4 * target as usize + 16;
        let mut k = target.saturating_sub(self.specials).max(1) as usize;
        for _ in 0..MAX_SEARCH_STEPS {
            let text = words.text(k);
            let Some(c) = self.count(&text) else {
                return Prompt { text, input_tokens: target, tokens_exact: false };
            };
            if c == target {
                return Prompt { text, input_tokens: c, tokens_exact: true };
            }
            best.offer(text, c, target);
            if c < target {
                if lo.is_none_or(|(l, _)| k > l) {
                    lo = Some((k, c));
                }
            } else if hi.is_none_or(|h| k < h) {
                hi = Some(k);
            }
            let floor = lo.map_or(1, |(l, _)| l + 1);
            let ceil = hi.map_or(cap, |h| h.saturating_sub(1)).min(cap);
            if floor > ceil {
                break;
            }
            // Secant step with the tokens per word seen so far; bisect when it leaves the bracket.
            let rate = (f64::from(c.saturating_sub(self.specials)) / k as f64).max(0.25);
            let step = ((f64::from(c.abs_diff(target)) / rate).round() as usize).max(1);
            let next = if c < target { k + step } else { k.saturating_sub(step) };
            k = if (floor..=ceil).contains(&next) {
                next
            } else if hi.is_some() && lo.is_some() {
                floor + (ceil - floor) / 2
            } else {
                next.clamp(floor, ceil)
            };
        }
        // No word count fits exactly (a multi-token word straddles the target):
        // extend the longest short text (at worst the empty one) with filler words that cost the gap.
        let start = lo.or_else(|| (self.specials < target).then_some((0, self.specials)));
        if let Some((mut k, mut c)) = start {
            let mut tries = 0;
            'grow: while c < target && tries < MAX_FILL_TRIES {
                let gap = target - c;
                // The filler costing the gap, then cheaper ones (largest first), then the cheapest.
                let fitting = self.fillers.iter().rev().filter(|&&(cost, _)| cost <= gap);
                let candidates: Vec<&'static str> = fitting.chain(self.fillers.first()).map(|&(_, w)| w).collect();
                for filler in candidates {
                    tries += 1;
                    if tries > MAX_FILL_TRIES {
                        break 'grow;
                    }
                    words.set(k, filler);
                    let text = words.text(k + 1);
                    let Some(n) = self.count(&text) else { break 'grow };
                    if n == target {
                        return Prompt { text, input_tokens: n, tokens_exact: true };
                    }
                    best.offer(text, n, target);
                    if n < target {
                        k += 1;
                        c = n;
                        continue 'grow;
                    }
                }
                break;
            }
        }
        match best.prompt {
            Some(p) => p,
            None => Prompt { text: words.text(1), input_tokens: target, tokens_exact: false },
        }
    }
}

/// Closest miss so far.
#[derive(Default)]
struct Best {
    distance: u32,
    prompt: Option<Prompt>,
}

impl Best {
    fn offer(&mut self, text: String, tokens: u32, target: u32) {
        let distance = tokens.abs_diff(target);
        if self.prompt.is_none() || distance < self.distance {
            self.distance = distance;
            self.prompt = Some(Prompt { text, input_tokens: tokens, tokens_exact: false });
        }
    }
}

/// The word sequence of one prompt: the index prefix, then random words, drawn as needed.
struct Words<'a> {
    rng: StdRng,
    pool: &'a [&'static str],
    words: Vec<&'static str>,
}

impl<'a> Words<'a> {
    fn new(rng: StdRng, pool: &'a [&'static str], id: u64) -> Words<'a> {
        // `pool` has at least MIN_UNIT_POOL (>= 2) words: see `Synthetic::new`.
        let base = pool.len().max(2) as u128;
        let mut span = base;
        let mut digits = 1;
        while span < 1 << 32 {
            span *= base;
            digits += 1;
        }
        let mut v = u128::from(id) % span;
        let mut words = Vec::with_capacity(64);
        for _ in 0..digits {
            let d = usize::try_from(v % base).unwrap_or(0);
            words.push(pool.get(d).copied().unwrap_or("the"));
            v /= base;
        }
        Words { rng, pool, words }
    }

    fn ensure(&mut self, k: usize) {
        let k = k.min(MAX_INPUT_TOKENS as usize * 2);
        while self.words.len() < k {
            let i = self.rng.random_range(0..self.pool.len().max(1));
            self.words.push(self.pool.get(i).copied().unwrap_or("the"));
        }
    }

    /// The first `k` words (at least one) joined by spaces.
    fn text(&mut self, k: usize) -> String {
        let k = k.max(1);
        self.ensure(k);
        self.words[..k.min(self.words.len())].join(" ")
    }

    fn set(&mut self, i: usize, word: &'static str) {
        self.ensure(i + 1);
        if let Some(slot) = self.words.get_mut(i) {
            *slot = word;
        }
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn word_list_is_distinct_lowercase_words() {
        let set: HashSet<_> = WORDS.iter().collect();
        assert_eq!(set.len(), WORDS.len(), "duplicate words");
        assert!(WORDS.len() >= 256, "{}", WORDS.len());
        assert!(WORDS.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
    }

    #[test]
    fn prefixes_are_distinct_for_consecutive_indices() {
        let pool = WORDS.to_vec();
        let first: HashSet<_> =
            (0..WORDS.len() as u64).map(|i| Words::new(StdRng::seed_from_u64(0), &pool, i).words[0]).collect();
        // The first word alone already tells consecutive indices apart.
        assert_eq!(first.len(), WORDS.len());
        let prefixes: HashSet<_> =
            (0..5000u64).map(|i| Words::new(StdRng::seed_from_u64(0), &pool, i).words.clone()).collect();
        assert_eq!(prefixes.len(), 5000);
    }
}
