//! JSON text as Go's `encoding/json` (Go 1.16, etcd 3.5's toolchain) reads it: its scanner, so
//! that malformed input gets the messages etcd's gateway answers with (`invalid character 'x'
//! looking for beginning of value`, `unexpected EOF`), its `Decoder`, which reads one value at a
//! time off a stream and ignores what follows, and the pieces of its unmarshaller the
//! transcoder needs on text the scanner has accepted: members, elements, unquoting.

/// Go's `maxNestingDepth`.
const MAX_DEPTH: usize = 10_000;

/// What a byte did, as Go's `scan*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Continue,
    EndObject,
    EndArray,
    SkipSpace,
    /// The top-level value ended just before this byte.
    End,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside `true`, `false` or `null`, with this many letters read.
    Literal(&'static str, usize),
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Go's `scanner`: a state machine fed one byte at a time.
pub struct Scanner {
    state: State,
    parse: Vec<Parse>,
    end_top: bool,
    err: Option<String>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { state: State::BeginValue, parse: Vec::new(), end_top: false, err: None }
    }
}

pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    pub fn error_message(&self) -> String {
        self.err.clone().unwrap_or_default()
    }

    pub fn step(&mut self, c: u8) -> Op {
        match self.state {
            State::BeginValue => self.begin_value(c),
            State::BeginValueOrEmpty => {
                if is_space(c) {
                    Op::SkipSpace
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            State::BeginStringOrEmpty => {
                if is_space(c) {
                    Op::SkipSpace
                } else if c == b'}' {
                    if let Some(top) = self.parse.last_mut() {
                        *top = Parse::ObjectValue;
                    }
                    self.end_value(c)
                } else {
                    self.begin_string(c)
                }
            }
            State::BeginString => self.begin_string(c),
            State::EndValue => self.end_value(c),
            State::EndTop => self.end_top(c),
            State::InString => match c {
                b'"' => self.go(State::EndValue),
                b'\\' => self.go(State::InStringEsc),
                c if c < 0x20 => self.error(c, "in string literal"),
                _ => Op::Continue,
            },
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.go(State::InString),
                b'u' => self.go(State::InStringEscU(0)),
                _ => self.error(c, "in string escape code"),
            },
            State::InStringEscU(read) => {
                if !c.is_ascii_hexdigit() {
                    return self.error(c, "in \\u hexadecimal character escape");
                }
                self.go(if read == 3 { State::InString } else { State::InStringEscU(read + 1) })
            }
            State::Neg => match c {
                b'0' => self.go(State::Zero),
                b'1'..=b'9' => self.go(State::One),
                _ => self.error(c, "in numeric literal"),
            },
            State::One => {
                if c.is_ascii_digit() {
                    Op::Continue
                } else {
                    self.zero(c)
                }
            }
            State::Zero => self.zero(c),
            State::Dot => {
                if c.is_ascii_digit() {
                    self.go(State::Dot0)
                } else {
                    self.error(c, "after decimal point in numeric literal")
                }
            }
            State::Dot0 => match c {
                b'0'..=b'9' => Op::Continue,
                b'e' | b'E' => self.go(State::E),
                _ => self.end_value(c),
            },
            State::E => {
                if c == b'+' || c == b'-' {
                    self.go(State::ESign)
                } else {
                    self.e_sign(c)
                }
            }
            State::ESign => self.e_sign(c),
            State::E0 => {
                if c.is_ascii_digit() {
                    Op::Continue
                } else {
                    self.end_value(c)
                }
            }
            State::Literal(word, read) => {
                let expected = word.as_bytes()[read];
                if c != expected {
                    return self.error(c, &format!("in literal {word} (expecting '{}')", expected as char));
                }
                self.go(if read + 1 == word.len() { State::EndValue } else { State::Literal(word, read + 1) })
            }
            State::Error => Op::Error,
        }
    }

    /// The end of input: whether the top-level value is complete (Go's `scanner.eof`).
    pub fn eof(&mut self) -> Op {
        if self.err.is_some() {
            return Op::Error;
        }
        if self.end_top {
            return Op::End;
        }
        self.step(b' ');
        if self.end_top {
            return Op::End;
        }
        if self.err.is_none() {
            self.err = Some("unexpected end of JSON input".to_string());
        }
        Op::Error
    }

    fn go(&mut self, state: State) -> Op {
        self.state = state;
        Op::Continue
    }

    fn error(&mut self, c: u8, context: &str) -> Op {
        self.state = State::Error;
        self.err = Some(format!("invalid character {} {context}", quote_char(c)));
        Op::Error
    }

    fn push(&mut self, c: u8, parse: Parse, state: State) -> Op {
        self.state = state;
        self.parse.push(parse);
        if self.parse.len() <= MAX_DEPTH {
            Op::Continue
        } else {
            self.error(c, "exceeded max depth")
        }
    }

    fn pop(&mut self) {
        self.parse.pop();
        if self.parse.is_empty() {
            self.state = State::EndTop;
            self.end_top = true;
        } else {
            self.state = State::EndValue;
        }
    }

    fn begin_value(&mut self, c: u8) -> Op {
        match c {
            c if is_space(c) => Op::SkipSpace,
            b'{' => self.push(c, Parse::ObjectKey, State::BeginStringOrEmpty),
            b'[' => self.push(c, Parse::ArrayValue, State::BeginValueOrEmpty),
            b'"' => self.go(State::InString),
            b'-' => self.go(State::Neg),
            b'0' => self.go(State::Zero),
            b'1'..=b'9' => self.go(State::One),
            b't' => self.go(State::Literal("true", 1)),
            b'f' => self.go(State::Literal("false", 1)),
            b'n' => self.go(State::Literal("null", 1)),
            _ => self.error(c, "looking for beginning of value"),
        }
    }

    fn begin_string(&mut self, c: u8) -> Op {
        match c {
            c if is_space(c) => Op::SkipSpace,
            b'"' => self.go(State::InString),
            _ => self.error(c, "looking for beginning of object key string"),
        }
    }

    /// Go's `stateEndValue`; public because `Decoder` invents a space after a closing bracket.
    pub fn end_value(&mut self, c: u8) -> Op {
        let Some(&top) = self.parse.last() else {
            self.state = State::EndTop;
            self.end_top = true;
            return self.end_top(c);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Op::SkipSpace;
        }
        match (top, c) {
            (Parse::ObjectKey, b':') => {
                self.set_top(Parse::ObjectValue);
                self.go(State::BeginValue)
            }
            (Parse::ObjectKey, _) => self.error(c, "after object key"),
            (Parse::ObjectValue, b',') => {
                self.set_top(Parse::ObjectKey);
                self.go(State::BeginString)
            }
            (Parse::ObjectValue, b'}') => {
                self.pop();
                Op::EndObject
            }
            (Parse::ObjectValue, _) => self.error(c, "after object key:value pair"),
            (Parse::ArrayValue, b',') => self.go(State::BeginValue),
            (Parse::ArrayValue, b']') => {
                self.pop();
                Op::EndArray
            }
            (Parse::ArrayValue, _) => self.error(c, "after array element"),
        }
    }

    fn set_top(&mut self, parse: Parse) {
        if let Some(top) = self.parse.last_mut() {
            *top = parse;
        }
    }

    fn end_top(&mut self, c: u8) -> Op {
        if !is_space(c) {
            // Go complains about the byte on the next call, and still reports the end.
            self.error(c, "after top-level value");
        }
        Op::End
    }

    fn zero(&mut self, c: u8) -> Op {
        match c {
            b'.' => self.go(State::Dot),
            b'e' | b'E' => self.go(State::E),
            _ => self.end_value(c),
        }
    }

    fn e_sign(&mut self, c: u8) -> Op {
        if c.is_ascii_digit() {
            self.go(State::E0)
        } else {
            self.error(c, "in exponent of numeric literal")
        }
    }
}

/// Go's `quoteChar`: how a byte appears in a syntax error.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\\' => "'\\\\'".to_string(),
        0x07 => "'\\a'".to_string(),
        0x08 => "'\\b'".to_string(),
        0x0c => "'\\f'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        0x0b => "'\\v'".to_string(),
        c if c < 0x20 => format!("'\\x{c:02x}'"),
        // A byte is quoted as the rune of the same value (Go 1.16's strconv): DEL,
        // U+0080..U+00A0 and the soft hyphen are not printable.
        0x7f..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        c => format!("'{}'", c as char),
    }
}

/// Go's `checkValid`: the whole of `data` must be one JSON value.
pub fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut scan = Scanner::default();
    for &c in data {
        if scan.step(c) == Op::Error {
            return Err(scan.error_message());
        }
    }
    if scan.eof() == Op::Error {
        return Err(scan.error_message());
    }
    Ok(())
}

/// What [`Decoder::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One whole value, without the whitespace around it.
    Value(Vec<u8>),
    /// The value has not ended yet: feed more.
    NeedMore,
    /// The input ended cleanly between values (Go's `io.EOF`).
    Eof,
    Err(String),
}

/// Go's `json.Decoder`: reads values one after another from a stream fed in pieces.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the value being read starts.
    start: usize,
    /// How far it has been scanned.
    pos: usize,
    scan: Scanner,
    ended: bool,
    failed: Option<String>,
}

impl Decoder {
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// No more input will come.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// Bytes held for the value being read.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn next(&mut self) -> Next {
        if let Some(err) = &self.failed {
            return Next::Err(err.clone());
        }
        while self.pos < self.buf.len() {
            match self.scan.step(self.buf[self.pos]) {
                Op::End => return Next::Value(self.take(self.pos)),
                // The value may have ended with this bracket; Go asks with an invented space
                // rather than wait for a byte that may never come.
                Op::EndObject | Op::EndArray if self.scan.end_value(b' ') == Op::End => return Next::Value(self.take(self.pos + 1)),
                Op::Error => return self.fail(self.scan.error_message()),
                _ => {}
            }
            self.pos += 1;
        }
        if !self.ended {
            return Next::NeedMore;
        }
        if self.scan.step(b' ') == Op::End {
            return Next::Value(self.take(self.pos));
        }
        if self.buf[self.start..].iter().any(|&c| !is_space(c)) {
            return self.fail("unexpected EOF".to_string());
        }
        Next::Eof
    }

    fn fail(&mut self, err: String) -> Next {
        self.failed = Some(err.clone());
        Next::Err(err)
    }

    fn take(&mut self, end: usize) -> Vec<u8> {
        let value = trim(&self.buf[self.start..end]).to_vec();
        self.start = end;
        self.pos = end;
        self.scan = Scanner::default();
        value
    }
}

pub fn trim(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|&c| !is_space(c)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|&c| !is_space(c)).map_or(start, |i| i + 1);
    &raw[start..end]
}

/// What a (valid, trimmed) value is, named as Go's `UnmarshalTypeError` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Shape {
    pub fn of(raw: &[u8]) -> Shape {
        match raw.first() {
            Some(b'{') => Shape::Object,
            Some(b'[') => Shape::Array,
            Some(b'"') => Shape::String,
            Some(b't' | b'f') => Shape::Bool,
            Some(b'n') => Shape::Null,
            _ => Shape::Number,
        }
    }

    pub fn go_name(self) -> &'static str {
        match self {
            Shape::Object => "object",
            Shape::Array => "array",
            Shape::String => "string",
            Shape::Number => "number",
            Shape::Bool => "bool",
            Shape::Null => "null",
        }
    }
}

/// The end of the value starting at `raw[at]` (valid JSON, no leading space).
fn skip_value(raw: &[u8], at: usize) -> usize {
    let mut i = at;
    let mut depth = 0usize;
    loop {
        match raw[i] {
            b'"' => {
                i += 1;
                while raw[i] != b'"' {
                    i += if raw[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                i += 1;
            }
            _ => {
                while i < raw.len() && !matches!(raw[i], b',' | b'}' | b']' | b':') && !is_space(raw[i]) {
                    i += 1;
                }
            }
        }
        if depth == 0 {
            return i;
        }
        while i < raw.len() && (is_space(raw[i]) || raw[i] == b',' || raw[i] == b':') {
            i += 1;
        }
    }
}

fn skip_space(raw: &[u8], mut i: usize) -> usize {
    while i < raw.len() && is_space(raw[i]) {
        i += 1;
    }
    i
}

/// The members of a valid object, keys unquoted, in order (duplicates kept).
pub fn members(raw: &[u8]) -> Vec<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut i = skip_space(raw, 1);
    while raw[i] != b'}' {
        let key_end = skip_value(raw, i);
        let key = unquote(&raw[i..key_end]);
        i = skip_space(raw, key_end) + 1;
        i = skip_space(raw, i);
        let value_end = skip_value(raw, i);
        out.push((key, &raw[i..value_end]));
        i = skip_space(raw, value_end);
        if raw[i] == b',' {
            i = skip_space(raw, i + 1);
        }
    }
    out
}

/// The elements of a valid array.
pub fn elements(raw: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = skip_space(raw, 1);
    while raw[i] != b']' {
        let end = skip_value(raw, i);
        out.push(&raw[i..end]);
        i = skip_space(raw, end);
        if raw[i] == b',' {
            i = skip_space(raw, i + 1);
        }
    }
    out
}

/// Go's `unquoteBytes` on a valid string literal: escapes resolved, lone surrogates and invalid
/// UTF-8 turned into U+FFFD one byte at a time.
pub fn unquote(raw: &[u8]) -> Vec<u8> {
    let s = &raw[1..raw.len() - 1];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                let escaped = s[i + 1];
                i += 2;
                let plain = match escaped {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let mut rune = hex4(&s[i..]);
                        i += 4;
                        if (0xd800..0xe000).contains(&rune) {
                            let low = (s.len() >= i + 6 && s[i] == b'\\' && s[i + 1] == b'u').then(|| hex4(&s[i + 2..]));
                            rune = match low {
                                Some(low) if rune < 0xdc00 && (0xdc00..0xe000).contains(&low) => {
                                    i += 6;
                                    0x10000 + ((rune - 0xd800) << 10) + (low - 0xdc00)
                                }
                                _ => 0xfffd,
                            };
                        }
                        let c = char::from_u32(rune).unwrap_or('\u{fffd}');
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        continue;
                    }
                    other => other,
                };
                out.push(plain);
            }
            c if c < 0x80 => {
                out.push(c);
                i += 1;
            }
            _ => match decode_char(&s[i..]) {
                Some((c, len)) => {
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    i += len;
                }
                None => {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                    i += 1;
                }
            },
        }
    }
    out
}

/// The UTF-8 character `s` starts with and its length; `None` for an invalid byte (Go's
/// `utf8.DecodeRune` returning `RuneError, 1`).
pub fn decode_char(s: &[u8]) -> Option<(char, usize)> {
    let len = match *s.first()? {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(..len)?).ok()?.chars().next()?;
    Some((c, len))
}

fn hex4(s: &[u8]) -> u32 {
    s[..4].iter().fold(0, |n, &c| n * 16 + (c as char).to_digit(16).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<Next> {
        let mut d = Decoder::default();
        d.feed(input);
        d.finish();
        let mut out = Vec::new();
        loop {
            let next = d.next();
            let stop = !matches!(next, Next::Value(_));
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn go_syntax_errors() {
        let err = |input: &str| match decode_all(input.as_bytes()).remove(0) {
            Next::Err(e) => e,
            other => panic!("{input}: {other:?}"),
        };
        assert_eq!(err("garbage"), "invalid character 'g' looking for beginning of value");
        assert_eq!(err(r#"{"key":"Zm9v","#), "unexpected EOF");
        assert_eq!(err(r#"{"key" "Zm9v"}"#), "invalid character '\"' after object key");
        assert_eq!(err(r#"{"key":"Zm9v" "a":1}"#), "invalid character '\"' after object key:value pair");
        assert_eq!(err("{key:1}"), "invalid character 'k' looking for beginning of object key string");
        assert_eq!(err(r#"{"limit":01}"#), "invalid character '1' after object key:value pair");
        assert_eq!(err(r#"{"limit":-}"#), "invalid character '}' in numeric literal");
        assert_eq!(err(r#"{"limit":tru}"#), "invalid character '}' in literal true (expecting 'e')");
        assert_eq!(err(r#"{"key":"\x"}"#), "invalid character 'x' in string escape code");
        assert_eq!(err(&format!("{}{}", "[".repeat(10_001), "]".repeat(10_001))), "invalid character '[' exceeded max depth");
        assert_eq!(check_valid(b"abc"), Err("invalid character 'a' looking for beginning of value".into()));
        assert_eq!(check_valid(b""), Err("unexpected end of JSON input".into()));
        assert_eq!(check_valid(b"5 6"), Err("invalid character '6' after top-level value".into()));
        assert_eq!(check_valid(b" 5 "), Ok(()));
    }

    #[test]
    fn decoder_reads_values_one_by_one() {
        assert_eq!(decode_all(b""), vec![Next::Eof]);
        assert_eq!(decode_all(b"  \n"), vec![Next::Eof]);
        assert_eq!(decode_all(b"{\"a\":1} {\"b\":2}\n"), vec![Next::Value(b"{\"a\":1}".to_vec()), Next::Value(b"{\"b\":2}".to_vec()), Next::Eof]);
        assert_eq!(decode_all(b"12"), vec![Next::Value(b"12".to_vec()), Next::Eof]);
        assert_eq!(decode_all(b"{} {\"b\""), vec![Next::Value(b"{}".to_vec()), Next::Err("unexpected EOF".into())]);
        let mut d = Decoder::default();
        d.feed(b"{\"a\":");
        assert_eq!(d.next(), Next::NeedMore);
        d.feed(b"[1]}{");
        assert_eq!(d.next(), Next::Value(b"{\"a\":[1]}".to_vec()));
        assert_eq!(d.next(), Next::NeedMore);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn members_elements_and_unquoting() {
        let raw = br#"{ "a" : [1, {"x":"}"}, "s\"]"] , "b\u00e9":null,"a":2 }"#;
        let m = members(raw);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].0, b"a");
        assert_eq!(elements(m[0].1), vec![&b"1"[..], &br#"{"x":"}"}"#[..], &br#""s\"]""#[..]]);
        assert_eq!(m[1].0, "bé".as_bytes());
        assert_eq!(m[2].1, b"2");
        assert_eq!(unquote(br#""\ud83d\ude00\ud800x\/""#), "😀\u{fffd}x/".as_bytes());
        assert_eq!(unquote(b"\"a\xffb\""), "a\u{fffd}b".as_bytes());
    }
}
