//! Label sets (the identity of a series) and label filters.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The labels of one sample, sorted by label name, names unique.
///
/// Sorting makes identity independent of the order the exposition printed them in, so a
/// series in a before-snapshot matches the same series in an after-snapshot exactly.
/// Stored compactly (one string with every name and value, plus offsets) because a scrape holds
/// tens of thousands of label sets. Serialized as a JSON object; `Debug` prints a map.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels {
    /// Names and values back to back: `name0 value0 name1 value1 ...`.
    text: String,
    /// Per pair, where its name and its value end in `text` (each starts where the previous ended).
    ends: Vec<(usize, usize)>,
}

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    /// Build from pairs in any order; when a name repeats, the last value wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Labels {
        let map: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Labels::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())), map.len())
    }

    /// From pairs already sorted by name with unique names.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone, len: usize) -> Labels {
        let bytes = pairs.clone().map(|(k, v)| k.len() + v.len()).sum();
        let mut labels = Labels { text: String::with_capacity(bytes), ends: Vec::with_capacity(len) };
        for (name, value) in pairs {
            labels.text.push_str(name);
            let name_end = labels.text.len();
            labels.text.push_str(value);
            labels.ends.push((name_end, labels.text.len()));
        }
        labels
    }

    /// Sort parsed pairs by name; `Err(name)` when a label name repeats.
    pub(crate) fn from_parsed(pairs: &mut [(Cow<'_, str>, Cow<'_, str>)]) -> Result<Labels, String> {
        if !pairs.is_sorted_by(|a, b| a.0 <= b.0) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.to_string());
        }
        Ok(Labels::from_sorted(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())), pairs.len()))
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        let (name_end, value_end) = self.ends[i];
        (&self.text[start..name_end], &self.text[name_end..value_end])
    }

    /// Value of the label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = (low + high) / 2;
            let (k, v) = self.pair(mid);
            match k.cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    /// `(name, value)` pairs sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        (0..self.ends.len()).map(|i| self.pair(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// A copy without the label `name` (e.g. `le`, to get a histogram's series labels).
    /// Equal to `other` once the label `name` is left out of both (the series of a bucket).
    pub fn eq_without(&self, other: &Labels, name: &str) -> bool {
        self.iter().filter(|(k, _)| *k != name).eq(other.iter().filter(|(k, _)| *k != name))
    }

    /// A copy with the label `name` set to `value` (replaced when present).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        Labels::from_pairs(self.iter().filter(|(k, _)| *k != name).chain([(name, value)]))
    }

    pub fn without(&self, name: &str) -> Labels {
        let kept = self.iter().filter(|(k, _)| *k != name);
        Labels::from_sorted(kept.clone(), kept.count())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        Labels::from_pairs(iter)
    }
}

/// `{a="x",b="y\"z"}` with exposition-format escaping; empty label sets print `{}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        super::render::write_label_set(&mut out, None, self);
        if out.is_empty() {
            out.push_str("{}");
        }
        f.write_str(&out)
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Labels, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Labels::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())), map.len()))
    }
}

/// Which series to select: every listed label must have the listed value. Empty selects everything.
///
/// As in PromQL, a required empty value (`with("engine", "")`) matches series without that label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter(Vec<(String, String)>);

impl LabelFilter {
    pub fn new() -> LabelFilter {
        LabelFilter(Vec::new())
    }

    /// Require label `name` to equal `value` (replaces an earlier requirement on `name`).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> LabelFilter {
        let name = name.into();
        self.0.retain(|(k, _)| *k != name);
        self.0.push((name, value.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The required `(name, value)` pairs, in the order they were added.
    pub fn requirements(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k).unwrap_or("") == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_and_last_wins() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "2"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("a"), Some("2"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.get(""), None);
        assert_eq!(l.without("a").iter().collect::<Vec<_>>(), vec![("b", "3")]);
        assert_eq!(l.without("zzz"), l);
        assert_eq!(format!("{l:?}"), r#"{"a": "2", "b": "3"}"#);
    }

    #[test]
    fn empty_names_and_values() {
        let l = Labels::from_pairs([("", ""), ("x", ""), ("y", "v")]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.get(""), Some(""));
        assert_eq!(l.get("x"), Some(""));
        assert_eq!(l.get("y"), Some("v"));
        assert_ne!(l, Labels::from_pairs([("", ""), ("xy", ""), ("", "v")]));
        assert_ne!(Labels::from_pairs([("ab", "c")]), Labels::from_pairs([("a", "bc")]));
    }

    #[test]
    fn from_parsed_rejects_duplicates() {
        let mut pairs = vec![(Cow::from("b"), Cow::from("1")), (Cow::from("b"), Cow::from("2"))];
        assert_eq!(Labels::from_parsed(&mut pairs), Err("b".to_string()));
        let mut pairs = vec![(Cow::from("z"), Cow::from("1")), (Cow::from("a"), Cow::from("2"))];
        let l = Labels::from_parsed(&mut pairs).unwrap();
        assert_eq!(l, Labels::from_pairs([("a", "2"), ("z", "1")]));
    }

    #[test]
    fn filter_matches_like_promql() {
        let l = Labels::from_pairs([("model_name", "tiny"), ("engine", "0")]);
        assert!(LabelFilter::new().matches(&l));
        assert!(LabelFilter::new().with("model_name", "tiny").matches(&l));
        assert!(!LabelFilter::new().with("model_name", "big").matches(&l));
        assert!(LabelFilter::new().with("lora", "").matches(&l));
        assert!(!LabelFilter::new().with("lora", "x").matches(&l));
        let f = LabelFilter::new().with("engine", "1").with("engine", "0");
        assert_eq!(f.requirements().len(), 1);
        assert!(f.matches(&l));
    }

    #[test]
    fn display_and_json() {
        let l = Labels::from_pairs([("b", "say \"hi\"\n"), ("a", "c:\\d")]);
        assert_eq!(l.to_string(), r#"{a="c:\\d",b="say \"hi\"\n"}"#);
        assert_eq!(Labels::new().to_string(), "{}");
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"a":"c:\\d","b":"say \"hi\"\n"}"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l);
    }
}
