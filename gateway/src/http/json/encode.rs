//! Protobuf wire bytes to JSON, as etcd 3.5's gateway writes responses: golang/protobuf's
//! `jsonpb.Marshaler` with `OrigName` (grpc-gateway v1's `JSONPb{OrigName: true}`):
//!
//! - fields in declaration order under their proto names, a oneof where its first member is
//!   declared; zero scalars, empty lists and absent messages left out (set oneof members are
//!   written even when zero);
//! - 64-bit integers as strings, 32-bit ones as numbers, enums by name (unknown numbers as
//!   numbers), bytes as padded standard base64;
//! - strings escaped by `encoding/json` (`<`, `>`, `&`, U+2028 and U+2029 too; invalid UTF-8
//!   becomes U+FFFD).

use base64::Engine;

use super::schema::{Field, Kind, Schema};

/// Responses mirror requests, which the decoder bounds; this only stops a malformed reply.
const MAX_DEPTH: usize = 200;

/// The JSON text of message `message` from its wire bytes.
pub fn message(schema: &Schema, message: usize, wire: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(wire.len() * 2 + 2);
    Encoder { schema }.message(message, wire, 0, &mut out)?;
    Ok(out)
}

struct Encoder<'a> {
    schema: &'a Schema,
}

#[derive(Clone, Copy)]
enum Value<'w> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'w [u8]),
}

fn read_varint(wire: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *wire.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn read_fixed<const N: usize>(wire: &[u8], at: &mut usize) -> Result<[u8; N], String> {
    let bytes = wire.get(*at..*at + N).ok_or("truncated fixed-width value")?;
    *at += N;
    Ok(bytes.try_into().expect("N bytes were taken"))
}

/// Every field of a message, by number, in wire order.
fn fields(wire: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let key = read_varint(wire, &mut at)?;
        let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        let value = match key & 7 {
            0 => Value::Varint(read_varint(wire, &mut at)?),
            1 => Value::Fixed64(u64::from_le_bytes(read_fixed(wire, &mut at)?)),
            2 => {
                let len = usize::try_from(read_varint(wire, &mut at)?).map_err(|_| "length out of range")?;
                let bytes = wire.get(at..at.checked_add(len).ok_or("length out of range")?).ok_or("truncated length-delimited value")?;
                at += len;
                Value::Len(bytes)
            }
            5 => Value::Fixed32(u32::from_le_bytes(read_fixed(wire, &mut at)?)),
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((number, value));
    }
    Ok(out)
}

impl Encoder<'_> {
    fn message(&self, index: usize, wire: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("message nested too deep".into());
        }
        let message = self.schema.message(index);
        let present = fields(wire).map_err(|e| format!("{}: {e}", message.full_name))?;
        let values = |number: u32| present.iter().filter(move |(n, _)| *n == number).map(|&(_, v)| v);
        // A oneof's member is the last one on the wire.
        let oneof_member = |oneof: usize| {
            present.iter().rev().find_map(|(n, _)| message.fields.iter().position(|f| f.number == *n && f.oneof == Some(oneof)))
        };
        let mut written_oneofs = Vec::new();
        let mut first = true;
        out.push(b'{');
        for field in &message.fields {
            let field = match field.oneof {
                Some(oneof) if written_oneofs.contains(&oneof) => continue,
                Some(oneof) => {
                    written_oneofs.push(oneof);
                    match oneof_member(oneof) {
                        Some(member) => &message.fields[member],
                        None => continue,
                    }
                }
                None => field,
            };
            let start = out.len();
            if !first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(field.name.as_bytes());
            out.extend_from_slice(b"\":");
            let written = if field.repeated {
                self.repeated(field, values(field.number), depth, out)?
            } else {
                self.singular(field, values(field.number), depth, out)?
            };
            if written {
                first = false;
            } else {
                out.truncate(start);
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Writes the list unless it is empty; packed and unpacked encodings both count.
    fn repeated<'w>(&self, field: &Field, values: impl Iterator<Item = Value<'w>>, depth: usize, out: &mut Vec<u8>) -> Result<bool, String> {
        let mut items = Vec::new();
        for value in values {
            match value {
                Value::Len(packed) if is_packable(field.kind) => items.extend(unpack(field.kind, packed)?),
                value => items.push(value),
            }
        }
        if items.is_empty() {
            return Ok(false);
        }
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.value(field, item, depth, out)?;
        }
        out.push(b']');
        Ok(true)
    }

    /// Writes the field's value unless it is unset (zero, outside a oneof).
    fn singular<'w>(&self, field: &Field, mut values: impl Iterator<Item = Value<'w>>, depth: usize, out: &mut Vec<u8>) -> Result<bool, String> {
        if let Kind::Message(index) = field.kind {
            // Repeated occurrences of a message merge, which for wire bytes is concatenation.
            let mut merged: Option<Vec<u8>> = None;
            for value in values {
                if let Value::Len(bytes) = value {
                    merged.get_or_insert_with(Vec::new).extend_from_slice(bytes);
                }
            }
            let Some(merged) = merged else { return Ok(false) };
            self.message(index, &merged, depth + 1, out)?;
            return Ok(true);
        }
        let Some(value) = values.by_ref().last() else { return Ok(false) };
        let zero = match value {
            Value::Varint(v) | Value::Fixed64(v) => v == 0,
            Value::Fixed32(v) => v == 0,
            Value::Len(b) => b.is_empty(),
        };
        if zero && field.oneof.is_none() {
            return Ok(false);
        }
        self.value(field, value, depth, out)?;
        Ok(true)
    }

    fn value(&self, field: &Field, value: Value<'_>, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let mismatch = || format!("field {} has the wrong wire type", field.name);
        let text = match (field.kind, value) {
            (Kind::Int64, Value::Varint(v)) => format!("\"{}\"", v as i64),
            (Kind::Uint64, Value::Varint(v)) => format!("\"{v}\""),
            (Kind::Sint64, Value::Varint(v)) => format!("\"{}\"", unzigzag(v)),
            (Kind::Fixed64, Value::Fixed64(v)) => format!("\"{v}\""),
            (Kind::Sfixed64, Value::Fixed64(v)) => format!("\"{}\"", v as i64),
            (Kind::Int32, Value::Varint(v)) => (v as i32).to_string(),
            (Kind::Sint32, Value::Varint(v)) => (unzigzag(v) as i32).to_string(),
            (Kind::Sfixed32, Value::Fixed32(v)) => (v as i32).to_string(),
            (Kind::Uint32, Value::Varint(v)) => (v as u32).to_string(),
            (Kind::Fixed32, Value::Fixed32(v)) => v.to_string(),
            (Kind::Bool, Value::Varint(v)) => (v != 0).to_string(),
            (Kind::Float, Value::Fixed32(v)) => float(f64::from(f32::from_bits(v))),
            (Kind::Double, Value::Fixed64(v)) => float(f64::from_bits(v)),
            (Kind::Enum(e), Value::Varint(v)) => match self.schema.enumeration(e).by_number(v as i32) {
                Some(name) => format!("\"{name}\""),
                None => (v as i32).to_string(),
            },
            (Kind::String, Value::Len(b)) => {
                go_string(b, out);
                return Ok(());
            }
            (Kind::Bytes, Value::Len(b)) => format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(b)),
            (Kind::Message(index), Value::Len(b)) => return self.message(index, b, depth + 1, out),
            _ => return Err(mismatch()),
        };
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

fn is_packable(kind: Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

fn unpack(kind: Kind, packed: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < packed.len() {
        out.push(match kind {
            Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => Value::Fixed64(u64::from_le_bytes(read_fixed(packed, &mut at)?)),
            Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => Value::Fixed32(u32::from_le_bytes(read_fixed(packed, &mut at)?)),
            _ => Value::Varint(read_varint(packed, &mut at)?),
        });
    }
    Ok(out)
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Floats are not in etcd's API; jsonpb names the non-finite ones.
fn float(f: f64) -> String {
    if f.is_nan() {
        "\"NaN\"".into()
    } else if f.is_infinite() {
        if f > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" }.into()
    } else {
        f.to_string()
    }
}

/// `encoding/json`'s string encoding with HTML escaping on, which jsonpb uses.
pub fn go_string(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'<' | b'>' | b'&' => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
                b if b < 0x20 => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
                b => out.push(b),
            }
            i += 1;
            continue;
        }
        match super::scan::decode_char(&s[i..]) {
            Some(('\u{2028}', len)) => {
                out.extend_from_slice(b"\\u2028");
                i += len;
            }
            Some(('\u{2029}', len)) => {
                out.extend_from_slice(b"\\u2029");
                i += len;
            }
            Some((_, len)) => {
                out.extend_from_slice(&s[i..i + len]);
                i += len;
            }
            None => {
                out.extend_from_slice(b"\\ufffd");
                i += 1;
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::{compare, Compare, RangeResponse, ResponseHeader, StatusResponse};
    use cairn_proto::mvccpb::KeyValue;
    use prost::Message;

    fn encode<M: Message>(name: &str, m: &M) -> String {
        let schema = Schema::get();
        let index = schema.messages.iter().position(|m| m.full_name == name).expect("known message");
        String::from_utf8(message(schema, index, &m.encode_to_vec()).expect("encodes")).expect("UTF-8")
    }

    #[test]
    fn writes_what_etcd_writes() {
        let header = ResponseHeader { cluster_id: 15118495548433857066, member_id: 13668033151171901709, revision: 3, raft_term: 2 };
        let range = RangeResponse {
            header: Some(header),
            kvs: vec![KeyValue { key: b"foo".to_vec(), create_revision: 3, mod_revision: 3, version: 1, value: b"bar".to_vec(), lease: 0 }],
            more: false,
            count: 1,
        };
        assert_eq!(
            encode("etcdserverpb.RangeResponse", &range),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"3","mod_revision":"3","version":"1","value":"YmFy"}],"count":"1"}"#
        );
        assert_eq!(encode("etcdserverpb.RangeResponse", &RangeResponse::default()), "{}");
        let status = StatusResponse { version: "3.5.1<&>\u{2028}".into(), db_size: 20480, ..Default::default() };
        assert_eq!(encode("etcdserverpb.StatusResponse", &status), r#"{"version":"3.5.1\u003c\u0026\u003e\u2028","dbSize":"20480"}"#);
        let cmp = Compare { result: 0, target: 1, key: b"a".to_vec(), range_end: vec![], target_union: Some(compare::TargetUnion::CreateRevision(0)) };
        assert_eq!(encode("etcdserverpb.Compare", &cmp), r#"{"target":"CREATE","key":"YQ==","create_revision":"0"}"#);
    }

    #[test]
    fn escapes_as_go() {
        let mut out = Vec::new();
        go_string(b"a\"\\\n\x01\x7f\xff\xe2\x82", &mut out);
        let mut expected = br#""a\"\\\n\u0001"#.to_vec();
        expected.push(0x7f);
        expected.extend_from_slice(br#"\ufffd\ufffd\ufffd""#);
        assert_eq!(out, expected);
    }
}
