//! `--input-tokens`: a fixed length or a uniform range.

use std::fmt;
use std::str::FromStr;

use rand::RngExt;

use super::PromptError;

/// Largest accepted prompt length, in tokens (beyond any model's context today).
pub const MAX_INPUT_TOKENS: u32 = 1_000_000;

/// Requested prompt length in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthSpec {
    /// Every prompt has this many tokens.
    Fixed(u32),
    /// Each prompt draws its length uniformly from `min..=max`.
    Uniform { min: u32, max: u32 },
}

impl Default for LengthSpec {
    fn default() -> Self {
        LengthSpec::Fixed(128)
    }
}

impl LengthSpec {
    /// Draw one length, clamped to `1..=MAX_INPUT_TOKENS` whatever the spec holds.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let n = match *self {
            LengthSpec::Fixed(n) => n,
            LengthSpec::Uniform { min, max } => {
                let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
                rng.random_range(lo..=hi)
            }
        };
        n.clamp(1, MAX_INPUT_TOKENS)
    }

    /// Largest length this spec can produce.
    pub fn max(&self) -> u32 {
        match *self {
            LengthSpec::Fixed(n) => n,
            LengthSpec::Uniform { min, max } => min.max(max),
        }
    }
}

impl fmt::Display for LengthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthSpec::Fixed(n) => write!(f, "{n}"),
            LengthSpec::Uniform { min, max } => write!(f, "{min}..{max}"),
        }
    }
}

impl FromStr for LengthSpec {
    type Err = PromptError;

    /// `N` or `MIN..MAX` (inclusive; `MIN..=MAX` is accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| PromptError::InvalidLength { value: s.to_string(), reason };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("expected N or MIN..MAX, e.g. 128 or 32..256".into()));
        }
        let parse = |part: &str| -> Result<u32, PromptError> {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "{part:?} is not a whole number (expected N or MIN..MAX, e.g. 128 or 32..256)"
                )));
            }
            let n: u64 = part.parse().unwrap_or(u64::MAX);
            if n == 0 {
                return Err(err("a prompt needs at least 1 token".into()));
            }
            if n > u64::from(MAX_INPUT_TOKENS) {
                return Err(err(format!("at most {MAX_INPUT_TOKENS} tokens")));
            }
            // n <= MAX_INPUT_TOKENS, so it fits.
            Ok(u32::try_from(n).unwrap_or(MAX_INPUT_TOKENS))
        };
        match t.split_once("..") {
            None => Ok(LengthSpec::Fixed(parse(t)?)),
            Some((min, max)) => {
                let max = max.strip_prefix('=').unwrap_or(max);
                let (min, max) = (parse(min)?, parse(max)?);
                match min.cmp(&max) {
                    std::cmp::Ordering::Less => Ok(LengthSpec::Uniform { min, max }),
                    std::cmp::Ordering::Equal => Ok(LengthSpec::Fixed(min)),
                    std::cmp::Ordering::Greater => Err(err(format!("the range is reversed ({min} > {max})"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn reason(s: &str) -> String {
        match s.parse::<LengthSpec>() {
            Err(e) => e.to_string(),
            Ok(spec) => panic!("{s:?} parsed as {spec:?}"),
        }
    }

    #[test]
    fn parses_fixed_and_ranges() {
        assert_eq!("128".parse::<LengthSpec>().ok(), Some(LengthSpec::Fixed(128)));
        assert_eq!(" 7 ".parse::<LengthSpec>().ok(), Some(LengthSpec::Fixed(7)));
        assert_eq!("32..256".parse::<LengthSpec>().ok(), Some(LengthSpec::Uniform { min: 32, max: 256 }));
        assert_eq!("32..=256".parse::<LengthSpec>().ok(), Some(LengthSpec::Uniform { min: 32, max: 256 }));
        assert_eq!("64..64".parse::<LengthSpec>().ok(), Some(LengthSpec::Fixed(64)));
        assert_eq!("1000000".parse::<LengthSpec>().ok(), Some(LengthSpec::Fixed(MAX_INPUT_TOKENS)));
    }

    #[test]
    fn rejects_bad_specs_naming_the_flag() {
        for bad in [
            "",
            "0",
            "0..10",
            "10..0",
            "256..32",
            "abc",
            "-5",
            "1.5",
            "12..",
            "..12",
            "1..2..3",
            "1000001",
            "99999999999999999999",
        ] {
            let msg = reason(bad);
            assert!(msg.contains("--input-tokens"), "{bad:?}: {msg}");
        }
        assert!(reason("0").contains("at least 1"));
        assert!(reason("256..32").contains("reversed"));
        assert!(reason("abc").contains("not a whole number"));
        assert!(reason("1000001").contains("at most"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["128", "32..256"] {
            let spec: LengthSpec = s.parse().unwrap_or(LengthSpec::Fixed(1));
            assert_eq!(spec.to_string(), s);
        }
    }

    #[test]
    fn uniform_samples_stay_in_range_and_cover_it() {
        let spec = LengthSpec::Uniform { min: 3, max: 6 };
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let n = spec.sample(&mut rng);
            assert!((3..=6).contains(&n), "{n}");
            seen[n as usize] = true;
        }
        assert!(seen[3] && seen[4] && seen[5] && seen[6]);
        assert_eq!(LengthSpec::Fixed(0).sample(&mut rng), 1);
    }
}
