//! A strict parser of the Prometheus text exposition format (version 0.0.4, what etcd serves):
//! it refuses what Prometheus would refuse and what a well-behaved exporter never writes: a
//! sample without a `# TYPE`, a family declared twice or split in two, a repeated series, bad
//! names, escapes or numbers, negative counters, and histograms whose buckets are not
//! cumulative or disagree with their `_count`.

use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug)]
pub struct Family {
    pub kind: Kind,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

#[derive(Debug)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Exposition, String> {
        Parser::default().parse(text)
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// The value of the one sample called `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let matching: Vec<&Sample> = self
            .families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.value),
            [] => Err(format!("no sample {name}{labels:?}")),
            many => Err(format!("{} samples match {name}{labels:?}", many.len())),
        }
    }
}

#[derive(Default)]
struct Parser {
    families: BTreeMap<String, Family>,
    /// Families whose samples have ended (another family's sample came after them).
    closed: HashSet<String>,
    current: Option<String>,
    series: HashSet<(String, Vec<(String, String)>)>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Go float: digits with an optional fraction and exponent, or `+Inf`, `-Inf`, `NaN`.
fn parse_value(raw: &str) -> Result<f64, String> {
    match raw {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let plain = raw.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    match raw.parse::<f64>() {
        Ok(v) if plain && raw.bytes().any(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(format!("bad number {raw:?}")),
    }
}

/// HELP text unescaped: only `\\` and `\n` are escapes there.
fn unescape_help(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => return Err(format!("bad escape \\{other:?} in HELP {raw:?}")),
        }
    }
    Ok(out)
}

impl Parser {
    fn parse(mut self, text: &str) -> Result<Exposition, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the exposition does not end with a newline".into());
        }
        for (number, line) in text.lines().enumerate() {
            self.line(line).map_err(|e| format!("line {}: {e}: {line:?}", number + 1))?;
        }
        for (name, family) in &self.families {
            check_family(name, family)?;
        }
        Ok(Exposition { families: self.families })
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = self.declare(name)?;
            if family.help.is_some() {
                return Err(format!("a second HELP for {name}"));
            }
            family.help = Some(unescape_help(help)?);
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
            let kind = match kind.trim() {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                "untyped" => Kind::Untyped,
                other => return Err(format!("unknown type {other:?}")),
            };
            let family = self.declare(name)?;
            if !family.samples.is_empty() {
                return Err(format!("TYPE for {name} after its samples"));
            }
            if family.kind != Kind::Untyped {
                return Err(format!("a second TYPE for {name}"));
            }
            family.kind = kind;
            return Ok(());
        }
        if line.starts_with('#') {
            return Ok(());
        }
        self.sample(line)
    }

    /// The family called `name`, created untyped if new; one that has ended cannot reopen.
    fn declare(&mut self, name: &str) -> Result<&mut Family, String> {
        if !is_metric_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        if self.closed.contains(name) {
            return Err(format!("{name} is described after its samples ended"));
        }
        Ok(self.families.entry(name.to_owned()).or_insert(Family { kind: Kind::Untyped, help: None, samples: Vec::new() }))
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let (name, labels, rest) = split_sample(line)?;
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or("no value")?)?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().map_err(|_| format!("bad timestamp {timestamp:?}"))?;
        }
        if fields.next().is_some() {
            return Err("text after the timestamp".into());
        }
        let family_name = self.family_of(&name, &labels)?;
        if self.current.as_deref() != Some(family_name.as_str()) {
            if self.closed.contains(&family_name) {
                return Err(format!("the samples of {family_name} are not grouped together"));
            }
            if let Some(previous) = self.current.replace(family_name.clone()) {
                self.closed.insert(previous);
            }
        }
        let series = (name.clone(), labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        if !self.series.insert(series) {
            return Err(format!("series {name}{labels:?} repeated"));
        }
        let family = self.families.get_mut(&family_name).expect("family_of found it");
        if family.kind == Kind::Counter && (value.is_nan() || value < 0.0) {
            return Err(format!("counter {name} is {value}"));
        }
        family.samples.push(Sample { name, labels, value });
        Ok(())
    }

    /// The declared family a sample belongs to, by its name and the type's suffixes.
    fn family_of(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<String, String> {
        if let Some(family) = self.families.get(name) {
            match family.kind {
                Kind::Counter | Kind::Gauge => return Ok(name.to_owned()),
                Kind::Summary if labels.contains_key("quantile") => return Ok(name.to_owned()),
                Kind::Untyped => return Err(format!("sample {name} has no TYPE")),
                _ => {}
            }
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = name.strip_suffix(suffix) else { continue };
            let Some(family) = self.families.get(base) else { continue };
            match (family.kind, suffix) {
                (Kind::Histogram, "_bucket") if labels.contains_key("le") => return Ok(base.to_owned()),
                (Kind::Histogram, "_bucket") => return Err(format!("bucket {name} without le")),
                (Kind::Histogram | Kind::Summary, "_sum" | "_count") => return Ok(base.to_owned()),
                _ => {}
            }
        }
        Err(format!("sample {name} belongs to no declared family"))
    }
}

/// `name{labels} rest` into its parts, labels unescaped.
fn split_sample(line: &str) -> Result<(String, BTreeMap<String, String>, &str), String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if inner[start..].starts_with('}') {
                rest = &inner[start + 1..];
                break;
            }
            let eq = inner[start..].find('=').ok_or("a label without =")? + start;
            let label = inner[start..eq].trim();
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {label} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("unterminated escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => return Err(format!("bad escape \\{other} in label {label}")),
                    },
                    c => value.push(c),
                }
            }
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} repeated"));
            }
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err("labels must be separated by commas".into()),
            }
        }
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("no space before the value".into());
    }
    Ok((name.to_owned(), labels, rest))
}

/// One histogram series: its `(le, count)` buckets, `_sum` and `_count`.
type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

/// A histogram's series each have increasing bounds, cumulative counts, a `+Inf` bucket equal
/// to `_count`, and a `_sum`.
fn check_family(name: &str, family: &Family) -> Result<(), String> {
    if family.kind != Kind::Histogram {
        return Ok(());
    }
    let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for s in &family.samples {
        let key = s.labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect();
        let entry = series.entry(key).or_default();
        if let Some(le) = s.labels.get("le") {
            entry.0.push((parse_value(le)?, s.value));
        } else if s.name.ends_with("_sum") {
            entry.1 = Some(s.value);
        } else {
            entry.2 = Some(s.value);
        }
    }
    for (labels, (mut buckets, sum, count)) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let what = format!("histogram {name}{labels:?}");
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{what}: bucket counts are not cumulative: {buckets:?}"));
        }
        let inf = buckets.last().filter(|b| b.0 == f64::INFINITY).ok_or(format!("{what}: no +Inf bucket"))?.1;
        let count = count.ok_or(format!("{what}: no _count"))?;
        if inf != count {
            return Err(format!("{what}: +Inf bucket {inf} but _count {count}"));
        }
        sum.ok_or(format!("{what}: no _sum"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP c_total A \\\\ counter.\n# TYPE c_total counter\nc_total{a=\"x\\\"y\",b=\"\"} 3\nc_total{a=\"z\"} 0\n\
                        # TYPE g gauge\ng -1.5e+09\n\
                        # TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.5\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 0.7\nh_seconds_count 2\n";

    #[test]
    fn reads_types_labels_and_values() {
        let e = Exposition::parse(GOOD).expect("valid");
        assert_eq!(e.family("c_total").map(|f| f.kind), Some(Kind::Counter));
        assert_eq!(e.family("c_total").and_then(|f| f.help.clone()).as_deref(), Some("A \\ counter."));
        assert_eq!(e.value("c_total", &[("a", "x\"y")]), Ok(3.0));
        assert_eq!(e.value("g", &[]), Ok(-1.5e9));
        assert_eq!(e.value("h_seconds_count", &[]), Ok(2.0));
        assert!(e.value("c_total", &[]).is_err(), "two samples match");
    }

    #[test]
    fn refuses_what_prometheus_would_refuse() {
        let bad = [
            ("untyped sample", "x 1\n"),
            ("no newline at the end", "# TYPE x gauge\nx 1"),
            ("second TYPE", "# TYPE x gauge\n# TYPE x gauge\nx 1\n"),
            ("split family", "# TYPE x gauge\n# TYPE y gauge\nx{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n"),
            ("repeated series", "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"),
            ("bad escape", "# TYPE x gauge\nx{a=\"\\t\"} 1\n"),
            ("bad number", "# TYPE x gauge\nx one\n"),
            ("negative counter", "# TYPE x counter\nx -1\n"),
            ("counter with OpenMetrics suffix", "# TYPE x counter\nx_total 1\n"),
            ("no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
            ("not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
            ("count mismatch", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n"),
            ("bucket without le", "# TYPE h histogram\nh_bucket 1\n"),
            ("bad label name", "# TYPE x gauge\nx{1a=\"v\"} 1\n"),
        ];
        for (why, text) in bad {
            assert!(Exposition::parse(text).is_err(), "accepted ({why}): {text:?}");
        }
    }
}
