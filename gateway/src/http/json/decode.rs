//! A JSON request body to protobuf wire bytes, as etcd 3.5's gateway reads it: grpc-gateway v1
//! hands the body to golang/protobuf's `jsonpb.Unmarshaler` (v1.5, reflection-based), which
//! splits objects with `encoding/json` and decodes each known field on its own. What that
//! accepts, this accepts, and where it fails this fails with the same message:
//!
//! - a field is found by its proto name or its lowerCamel name (the latter wins); unknown keys
//!   and `null` values are skipped; of duplicate keys the last counts;
//! - 64-bit and 32-bit integers may be numbers or strings; a string's quotes are cut off and its
//!   raw contents parsed as a JSON number (`" 5"` is 5, `"1e2"` is an error);
//! - enums are names or numbers (unknown numbers pass); bytes are standard padded base64;
//! - of a oneof's members the last one in declaration order wins.

use super::scan::{check_valid, decode_char, elements, members, unquote, Shape};
use super::schema::{Field, Kind, Schema};

/// Protobuf messages nest at most this deep; prost refuses deeper ones when the gRPC service
/// decodes them (its recursion limit is 100), so the gateway refuses them first, as a bad
/// request. Only a txn nested in txns gets near it.
const MAX_MESSAGE_DEPTH: usize = 100;

/// Go protobuf's refusal of an over-deep message.
const TOO_DEEP: &str = "exceeded maximum recursion depth";

/// Wire bytes of message `message` from the JSON value `raw` (valid JSON, trimmed).
pub fn message(schema: &Schema, message: usize, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    Decoder { schema }.message(message, raw, 0, &mut out)?;
    Ok(out)
}

struct Decoder<'a> {
    schema: &'a Schema,
}

/// A decoded scalar or length-delimited value, before its tag is written.
enum Wire {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Len(Vec<u8>),
}

impl Wire {
    fn is_zero(&self) -> bool {
        match self {
            Wire::Varint(v) | Wire::Fixed64(v) => *v == 0,
            Wire::Fixed32(v) => *v == 0,
            Wire::Len(b) => b.is_empty(),
        }
    }

    fn write(&self, number: u32, out: &mut Vec<u8>) {
        match self {
            Wire::Varint(v) => {
                put_varint(u64::from(number) << 3, out);
                put_varint(*v, out);
            }
            Wire::Fixed64(v) => {
                put_varint((u64::from(number) << 3) | 1, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Wire::Len(b) => {
                put_varint((u64::from(number) << 3) | 2, out);
                put_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Wire::Fixed32(v) => {
                put_varint((u64::from(number) << 3) | 5, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `encoding/json`'s `UnmarshalTypeError` for a value of the wrong shape.
fn type_error(value: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal {value} into Go value of type {go_type}")
}

impl Decoder<'_> {
    fn message(&self, index: usize, raw: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if raw == b"null" {
            return Ok(());
        }
        if depth >= MAX_MESSAGE_DEPTH {
            return Err(TOO_DEEP.to_string());
        }
        let shape = Shape::of(raw);
        if shape != Shape::Object {
            return Err(type_error(shape.go_name(), "map[string]json.RawMessage"));
        }
        let object = members(raw);
        let last = |key: &str| object.iter().rev().find(|(k, _)| k == key.as_bytes()).map(|&(_, v)| v);
        let message = self.schema.message(index);
        let mut oneofs: Vec<(usize, u32, Wire)> = Vec::new();
        for field in &message.fields {
            let Some(value) = last(&field.json_name).or_else(|| last(&field.name)) else {
                continue;
            };
            if value == b"null" {
                continue;
            }
            if field.repeated {
                self.repeated(field, value, depth, out)?;
                continue;
            }
            let wire = self.singular(field, value, depth)?;
            match field.oneof {
                Some(oneof) => {
                    oneofs.retain(|(o, _, _)| *o != oneof);
                    oneofs.push((oneof, field.number, wire));
                }
                None if wire.is_zero() && !matches!(field.kind, Kind::Message(_)) => {}
                None => wire.write(field.number, out),
            }
        }
        for (_, number, wire) in oneofs {
            wire.write(number, out);
        }
        Ok(())
    }

    fn repeated(&self, field: &Field, raw: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let shape = Shape::of(raw);
        if shape != Shape::Array {
            return Err(type_error(shape.go_name(), "[]json.RawMessage"));
        }
        for element in elements(raw) {
            self.singular(field, element, depth)?.write(field.number, out);
        }
        Ok(())
    }

    fn singular(&self, field: &Field, raw: &[u8], depth: usize) -> Result<Wire, String> {
        Ok(match field.kind {
            Kind::Bool => Wire::Varint(u64::from(boolean(raw)?)),
            Kind::Int32 => Wire::Varint(integer(trim_quote(raw), "int32")? as u64),
            Kind::Sint32 => Wire::Varint(zigzag(integer(trim_quote(raw), "int32")?)),
            Kind::Sfixed32 => Wire::Fixed32(integer(trim_quote(raw), "int32")? as u32),
            Kind::Int64 => Wire::Varint(integer(trim_quote(raw), "int64")? as u64),
            Kind::Sint64 => Wire::Varint(zigzag(integer(trim_quote(raw), "int64")?)),
            Kind::Sfixed64 => Wire::Fixed64(integer(trim_quote(raw), "int64")? as u64),
            Kind::Uint32 => Wire::Varint(unsigned(trim_quote(raw), "uint32")?),
            Kind::Fixed32 => Wire::Fixed32(unsigned(trim_quote(raw), "uint32")? as u32),
            Kind::Uint64 => Wire::Varint(unsigned(trim_quote(raw), "uint64")?),
            Kind::Fixed64 => Wire::Fixed64(unsigned(trim_quote(raw), "uint64")?),
            Kind::Float => Wire::Fixed32((float(raw, "float32")? as f32).to_bits()),
            Kind::Double => Wire::Fixed64(float(raw, "float64")?.to_bits()),
            Kind::String => Wire::Len(string(raw)?),
            Kind::Bytes => Wire::Len(bytes(raw)?),
            Kind::Enum(e) => Wire::Varint(self.enumeration(e, raw)? as u64),
            Kind::Message(m) => {
                let mut nested = Vec::new();
                self.message(m, raw, depth + 1, &mut nested)?;
                Wire::Len(nested)
            }
        })
    }

    fn enumeration(&self, index: usize, raw: &[u8]) -> Result<i64, String> {
        let e = self.schema.enumeration(index);
        if raw.len() >= 2 && raw[0] == b'"' && raw[raw.len() - 1] == b'"' {
            // Looked up by the raw text between the quotes, escapes and all, as jsonpb does.
            return e.by_name(&raw[1..raw.len() - 1]).map(i64::from).ok_or_else(|| format!("unknown value {} for enum {}", go_quote(raw), e.full_name));
        }
        integer(raw, "protoreflect.EnumNumber")
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// jsonpb's `trimQuote`: a leading and a trailing quote come off, nothing else.
fn trim_quote(raw: &[u8]) -> &[u8] {
    if raw.len() >= 2 && raw[0] == b'"' && raw[raw.len() - 1] == b'"' {
        &raw[1..raw.len() - 1]
    } else {
        raw
    }
}

/// `json.Unmarshal(text, &intN)`: `text` is the raw value or a string's raw contents.
fn integer(text: &[u8], go_type: &str) -> Result<i64, String> {
    check_valid(text)?;
    let text = super::scan::trim(text);
    let bits = if go_type == "int64" { 64 } else { 32 };
    match Shape::of(text) {
        Shape::Null => Ok(0),
        Shape::Number => {
            let s = std::str::from_utf8(text).unwrap_or_default();
            s.parse::<i64>()
                .ok()
                .filter(|&n| bits == 64 || i32::try_from(n).is_ok())
                .ok_or_else(|| type_error(&format!("number {s}"), go_type))
        }
        shape => Err(type_error(shape.go_name(), go_type)),
    }
}

fn unsigned(text: &[u8], go_type: &str) -> Result<u64, String> {
    check_valid(text)?;
    let text = super::scan::trim(text);
    let bits = if go_type == "uint64" { 64 } else { 32 };
    match Shape::of(text) {
        Shape::Null => Ok(0),
        Shape::Number => {
            let s = std::str::from_utf8(text).unwrap_or_default();
            s.parse::<u64>()
                .ok()
                .filter(|&n| bits == 64 || u32::try_from(n).is_ok())
                .ok_or_else(|| type_error(&format!("number {s}"), go_type))
        }
        shape => Err(type_error(shape.go_name(), go_type)),
    }
}

/// Floats are not in etcd's API; this follows jsonpb (named non-finite values, numbers).
fn float(raw: &[u8], go_type: &str) -> Result<f64, String> {
    match raw {
        b"\"NaN\"" => return Ok(f64::NAN),
        b"\"Infinity\"" => return Ok(f64::INFINITY),
        b"\"-Infinity\"" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    match Shape::of(raw) {
        Shape::Number => {
            let s = std::str::from_utf8(raw).unwrap_or_default();
            s.parse::<f64>().map_err(|_| type_error(&format!("number {s}"), go_type))
        }
        shape => Err(type_error(shape.go_name(), go_type)),
    }
}

fn boolean(raw: &[u8]) -> Result<bool, String> {
    match Shape::of(raw) {
        Shape::Bool => Ok(raw == b"true"),
        Shape::Null => Ok(false),
        shape => Err(type_error(shape.go_name(), "bool")),
    }
}

fn string(raw: &[u8]) -> Result<Vec<u8>, String> {
    match Shape::of(raw) {
        Shape::String => Ok(unquote(raw)),
        Shape::Null => Ok(Vec::new()),
        shape => Err(type_error(shape.go_name(), "string")),
    }
}

/// `json.Unmarshal(raw, &[]byte)`: base64 text, or (as Go allows) an array of byte values.
fn bytes(raw: &[u8]) -> Result<Vec<u8>, String> {
    match Shape::of(raw) {
        Shape::String => go_base64(&unquote(raw)).map_err(|at| format!("illegal base64 data at input byte {at}")),
        Shape::Null => Ok(Vec::new()),
        Shape::Array => {
            let mut out = Vec::new();
            let mut first_error = None;
            for element in elements(raw) {
                let byte = match Shape::of(element) {
                    Shape::Null => Ok(0),
                    Shape::Number => {
                        let s = std::str::from_utf8(element).unwrap_or_default();
                        s.parse::<u8>().map_err(|_| type_error(&format!("number {s}"), "uint8"))
                    }
                    shape => Err(type_error(shape.go_name(), "uint8")),
                };
                match byte {
                    Ok(b) => out.push(b),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(out), Err)
        }
        shape => Err(type_error(shape.go_name(), "[]uint8")),
    }
}

/// Go's `base64.StdEncoding.Decode`: padded standard alphabet, CR and LF skipped, trailing
/// bits not checked. The error is the offset Go's `CorruptInputError` reports.
fn go_base64(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn value(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let skip_newlines = |mut si: usize| {
        while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
            si += 1;
        }
        si
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = value(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                // "==" is expected; the first "=" is read.
                si = skip_newlines(si);
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            si = skip_newlines(si);
            if si < src.len() {
                return Err(si);
            }
            len = j;
            break;
        }
        let bits = (u32::from(quantum[0]) << 18) | (u32::from(quantum[1]) << 12) | (u32::from(quantum[2]) << 6) | u32::from(quantum[3]);
        out.extend_from_slice(&bits.to_be_bytes()[1..len]);
    }
    Ok(out)
}

/// Go's `%q` of a byte slice: a double-quoted string with Go escapes.
fn go_quote(raw: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut i = 0;
    while i < raw.len() {
        let Some((c, len)) = decode_char(&raw[i..]) else {
            out.push_str(&format!("\\x{:02x}", raw[i]));
            i += 1;
            continue;
        };
        i += len;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c == '\u{ad}' || (c.is_whitespace() && c != ' ') => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::{compare, request_op, Compare, RangeRequest, RequestOp, TxnRequest};
    use prost::Message;

    fn decode<M: Message + Default>(name: &str, json: &str) -> Result<M, String> {
        let schema = Schema::get();
        let index = schema.messages.iter().position(|m| m.full_name == name).expect("known message");
        let wire = message(schema, index, json.as_bytes())?;
        Ok(M::decode(wire.as_slice()).expect("valid wire bytes"))
    }

    #[test]
    fn reads_what_jsonpb_reads() {
        let r: RangeRequest = decode("etcdserverpb.RangeRequest", r#"{"key":"Zm9v","rangeEnd":"Zm9w","range_end":"YQ==","limit":" 5","revision":7,"sort_order":"DESCEND","sort_target":7,"keysOnly":true,"count_only":null,"junk":[{"x":1}]}"#).expect("decodes");
        assert_eq!(r.key, b"foo");
        assert_eq!(r.range_end, b"fop", "the lowerCamel name wins");
        assert_eq!((r.limit, r.revision, r.sort_order, r.sort_target, r.keys_only, r.count_only), (5, 7, 2, 7, true, false));
        let r: RangeRequest = decode("etcdserverpb.RangeRequest", r#"{"key":[102,111,111]}"#).expect("bytes as an array");
        assert_eq!(r.key, b"foo");
        let r: RangeRequest = decode("etcdserverpb.RangeRequest", "null").expect("null is an empty request");
        assert_eq!(r, RangeRequest::default());
    }

    #[test]
    fn oneofs_keep_zero_values_and_the_last_member() {
        let c: Compare = decode("etcdserverpb.Compare", r#"{"key":"YQ==","result":"EQUAL","target":"CREATE","create_revision":0}"#).expect("decodes");
        assert_eq!(c.target_union, Some(compare::TargetUnion::CreateRevision(0)));
        let t: TxnRequest = decode("etcdserverpb.TxnRequest", r#"{"success":[{"request_put":{"key":"YQ=="},"request_range":{"key":"YQ=="}}]}"#).expect("decodes");
        assert!(matches!(t.success[0], RequestOp { request: Some(request_op::Request::RequestPut(_)) }));
    }

    #[test]
    fn fails_as_jsonpb_fails() {
        let err = |json: &str| decode::<RangeRequest>("etcdserverpb.RangeRequest", json).expect_err(json);
        assert_eq!(err(r#"{"key":"Zm9v","limit":"abc"}"#), "invalid character 'a' looking for beginning of value");
        assert_eq!(err(r#"{"key":"!!!"}"#), "illegal base64 data at input byte 0");
        assert_eq!(err(r#"{"key":"Zm9"}"#), "illegal base64 data at input byte 0");
        assert_eq!(err(r#"{"key":"Zm9v=="}"#), "illegal base64 data at input byte 4");
        assert_eq!(err(r#"{"key":"Zm9v_-"}"#), "illegal base64 data at input byte 4");
        assert_eq!(err(r#"{"sort_order":"BOGUS"}"#), r#"unknown value "\"BOGUS\"" for enum etcdserverpb.RangeRequest.SortOrder"#);
        assert_eq!(err(r#"{"sort_order":1.5}"#), "json: cannot unmarshal number 1.5 into Go value of type protoreflect.EnumNumber");
        assert_eq!(err(r#"{"sort_order":true}"#), "json: cannot unmarshal bool into Go value of type protoreflect.EnumNumber");
        assert_eq!(err(r#"{"limit":5.5}"#), "json: cannot unmarshal number 5.5 into Go value of type int64");
        assert_eq!(err(r#"{"limit":"1e2"}"#), "json: cannot unmarshal number 1e2 into Go value of type int64");
        assert_eq!(err(r#"{"limit":true}"#), "json: cannot unmarshal bool into Go value of type int64");
        assert_eq!(err(r#"{"limit":"99999999999999999999999"}"#), "json: cannot unmarshal number 99999999999999999999999 into Go value of type int64");
        assert_eq!(err(r#"{"limit":""}"#), "unexpected end of JSON input");
        assert_eq!(err(r#"{"serializable":"yes"}"#), "json: cannot unmarshal string into Go value of type bool");
        assert_eq!(err(r#"{"key":1}"#), "json: cannot unmarshal number into Go value of type []uint8");
        assert_eq!(err(r#"{"key":{"a":1}}"#), "json: cannot unmarshal object into Go value of type []uint8");
        assert_eq!(err(r#"{"key":["Zm9v"]}"#), "json: cannot unmarshal string into Go value of type uint8");
        assert_eq!(err("[]"), "json: cannot unmarshal array into Go value of type map[string]json.RawMessage");
        assert_eq!(err("\"str\""), "json: cannot unmarshal string into Go value of type map[string]json.RawMessage");
        let txn_err = |json: &str| decode::<TxnRequest>("etcdserverpb.TxnRequest", json).expect_err(json);
        assert_eq!(txn_err(r#"{"compare":{}}"#), "json: cannot unmarshal object into Go value of type []json.RawMessage");
        assert_eq!(txn_err(r#"{"compare":[1]}"#), "json: cannot unmarshal number into Go value of type map[string]json.RawMessage");
        let deep = format!("{{\"success\":{}[]{}}}", "[{\"request_txn\":{\"success\":".repeat(50), "}}]".repeat(50));
        assert_eq!(txn_err(&deep), TOO_DEEP);
    }

    #[test]
    fn base64_as_go() {
        assert_eq!(go_base64(b"Zm9v"), Ok(b"foo".to_vec()));
        assert_eq!(go_base64(b"Zm8="), Ok(b"fo".to_vec()));
        assert_eq!(go_base64(b"Zg=="), Ok(b"f".to_vec()));
        assert_eq!(go_base64(b"Zm\r\n9v"), Ok(b"foo".to_vec()));
        assert_eq!(go_base64(b""), Ok(Vec::new()));
        assert_eq!(go_base64(b"Zg="), Err(3));
        assert_eq!(go_base64(b"Zg==Zg=="), Err(4));
        assert_eq!(go_base64(b"Z"), Err(0));
        assert_eq!(go_base64(b"Zm9vZ"), Err(4));
    }
}
