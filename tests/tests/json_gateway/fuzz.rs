//! Malformed gateway input, made deterministically: hand-picked cases with the answers etcd
//! 3.5.1 gives them, and seeded mutations of valid requests.

use serde_json::Value;

/// xorshift64*: small, seeded, the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Valid requests whose mutations cannot stop a member from serving: no alarms, locks,
/// elections, membership, auth or compaction. Keys live under `fuzz/`.
const SEEDS: &[(&str, &str)] = &[
    ("/v3/kv/range", r#"{"key":"ZnV6ei9h","range_end":"ZnV6ei9i","limit":"10","revision":"0","sort_order":"ASCEND","sort_target":"KEY","serializable":false,"keys_only":false}"#),
    ("/v3/kv/put", r#"{"key":"ZnV6ei9r","value":"dmFsdWU=","prev_kv":true,"ignore_value":false}"#),
    ("/v3/kv/deleterange", r#"{"key":"ZnV6ei94","range_end":"ZnV6ei95","prev_kv":true}"#),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"key":"ZnV6ei9r","result":"EQUAL","target":"VERSION","version":"1"},{"key":"ZnV6ei9r","target":"CREATE","create_revision":0}],"success":[{"request_put":{"key":"ZnV6ei90","value":"eA=="}}],"failure":[{"request_range":{"key":"ZnV6ei9r","count_only":true}},{"request_delete_range":{"key":"ZnV6ei94"}}]}"#,
    ),
    ("/v3/lease/timetolive", r#"{"ID":"12345","keys":true}"#),
    ("/v3/kv/lease/revoke", r#"{"ID":"12345"}"#),
    ("/v3/maintenance/status", "{}"),
    ("/v3/cluster/member/list", r#"{"linearizable":true}"#),
];

/// Values of every JSON type, valid for some fields and wrong for most.
const ODD_VALUES: &[&str] = &[
    "true", "1.5", "-1", "7", "0", "null", "[]", "{}", "[1,2,300]", r#""!!!""#, r#""abc""#, r#""Zm9v""#, r#""Zm9""#,
    r#""99999999999999999999""#, r#""\u0041""#, r#""EQUAL""#, r#""DELETE""#, r#"{"a":[1,{}]}"#, r#"[{"key":1}]"#, r#"" 5 ""#,
];

/// Bytes that matter to a JSON scanner, and some that never belong in JSON.
const ODD_BYTES: &[u8] = b"{}[]\":,\\ \t\n0123456789-+.eEtrufalsn/u\x00\x01\x7f\x80\xc3\xff";

/// One request to send.
#[derive(Clone, Debug)]
pub struct Case {
    pub path: &'static str,
    pub body: Vec<u8>,
}

/// `count` mutations of the seed requests, the same for the same `seed`.
pub fn mutations(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let &(path, body) = rng.pick(SEEDS);
            let body = match rng.below(4) {
                0 => truncate(&mut rng, body.as_bytes()),
                1 => retype(&mut rng, body),
                _ => edit_bytes(&mut rng, body.as_bytes()),
            };
            Case { path, body }
        })
        .collect()
}

fn truncate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    body[..rng.below(body.len())].to_vec()
}

/// One to three byte edits: a replaced, inserted or deleted byte, or a duplicated span.
fn edit_bytes(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(body.len());
        let byte = if rng.below(4) == 0 { rng.next() as u8 } else { *rng.pick(ODD_BYTES) };
        match rng.below(4) {
            0 => body[at] = byte,
            1 => body.insert(at, byte),
            2 => {
                body.remove(at);
            }
            _ => {
                let end = (at + 1 + rng.below(8)).min(body.len());
                let span = body[at..end].to_vec();
                body.splice(at..at, span);
            }
        }
        if body.is_empty() {
            break;
        }
    }
    body
}

/// Replaces one value anywhere in the request with an [`ODD_VALUES`] value.
fn retype(rng: &mut Rng, body: &str) -> Vec<u8> {
    let mut value: Value = serde_json::from_str(body).expect("seeds are valid JSON");
    let mut slots = Vec::new();
    collect_slots(&value, &mut Vec::new(), &mut slots);
    if slots.is_empty() {
        return (*rng.pick(ODD_VALUES)).as_bytes().to_vec();
    }
    let slot = rng.pick(&slots).clone();
    let odd: &&str = rng.pick(ODD_VALUES);
    let odd: Value = serde_json::from_str(odd).expect("odd values are valid JSON");
    if let Some(target) = slot.iter().try_fold(&mut value, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    }) {
        *target = odd;
    }
    value.to_string().into_bytes()
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn collect_slots(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let children: Vec<(Step, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (Step::Index(i), v)).collect(),
        _ => return,
    };
    for (step, child) in children {
        path.push(step);
        out.push(path.clone());
        collect_slots(child, path, out);
        path.pop();
    }
}

/// Bad requests and what etcd 3.5.1 answers them: status, gRPC code, message. Unary requests
/// get code 3 (InvalidArgument); a first stream request that cannot be read gets code 2
/// (Unknown, hence 500), as grpc-gateway v1 reports it.
pub const EXACT: &[(&str, &str, u16, i64, &str)] = &[
    ("/v3/kv/range", "garbage", 400, 3, "invalid character 'g' looking for beginning of value"),
    ("/v3/kv/range", r#"{"key":"Zm9v","#, 400, 3, "unexpected EOF"),
    ("/v3/kv/range", r#"{"key" "Zm9v"}"#, 400, 3, "invalid character '\"' after object key"),
    ("/v3/kv/range", r#"{"key":"Zm9v" "a":1}"#, 400, 3, "invalid character '\"' after object key:value pair"),
    ("/v3/kv/range", "{key:1}", 400, 3, "invalid character 'k' looking for beginning of object key string"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":01}"#, 400, 3, "invalid character '1' after object key:value pair"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":-}"#, 400, 3, "invalid character '}' in numeric literal"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":tru}"#, 400, 3, "invalid character '}' in literal true (expecting 'e')"),
    ("/v3/kv/range", r#"{"key":"\x"}"#, 400, 3, "invalid character 'x' in string escape code"),
    ("/v3/kv/range", r#"{"key":"!!!"}"#, 400, 3, "illegal base64 data at input byte 0"),
    ("/v3/kv/range", r#"{"key":"Zm9v=="}"#, 400, 3, "illegal base64 data at input byte 4"),
    ("/v3/kv/range", r#"{"key":"Zm9v_-"}"#, 400, 3, "illegal base64 data at input byte 4"),
    ("/v3/kv/range", r#"{"key":1}"#, 400, 3, "json: cannot unmarshal number into Go value of type []uint8"),
    ("/v3/kv/range", r#"{"key":["Zm9v"]}"#, 400, 3, "json: cannot unmarshal string into Go value of type uint8"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":"abc"}"#, 400, 3, "invalid character 'a' looking for beginning of value"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":true}"#, 400, 3, "json: cannot unmarshal bool into Go value of type int64"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":5.5}"#, 400, 3, "json: cannot unmarshal number 5.5 into Go value of type int64"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":"1e2"}"#, 400, 3, "json: cannot unmarshal number 1e2 into Go value of type int64"),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":""}"#, 400, 3, "unexpected end of JSON input"),
    ("/v3/kv/range", r#"{"key":"Zm9v","serializable":"yes"}"#, 400, 3, "json: cannot unmarshal string into Go value of type bool"),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","sort_order":"BOGUS"}"#,
        400,
        3,
        r#"unknown value "\"BOGUS\"" for enum etcdserverpb.RangeRequest.SortOrder"#,
    ),
    ("/v3/kv/range", r#"{"key":"Zm9v","sort_order":1.5}"#, 400, 3, "json: cannot unmarshal number 1.5 into Go value of type protoreflect.EnumNumber"),
    ("/v3/kv/range", "[]", 400, 3, "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
    ("/v3/kv/range", r#""str""#, 400, 3, "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
    ("/v3/kv/range", "", 400, 3, super::KEY_NOT_PROVIDED),
    ("/v3/kv/txn", r#"{"compare":{}}"#, 400, 3, "json: cannot unmarshal object into Go value of type []json.RawMessage"),
    ("/v3/kv/txn", r#"{"compare":[1]}"#, 400, 3, "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"),
    ("/v3/lease/grant", r#"{"TTL":"sixty"}"#, 400, 3, "invalid character 's' looking for beginning of value"),
    ("/v3/watch", r#"{"create_request":"#, 500, 2, "unexpected EOF"),
    ("/v3/watch", r#"{"create_request":{"key":1}}"#, 500, 2, "json: cannot unmarshal number into Go value of type []uint8"),
    ("/v3/lease/keepalive", r#"{"ID":true}"#, 500, 2, "json: cannot unmarshal bool into Go value of type int64"),
];

/// JSON nested deeper than Go's scanner allows (10000 levels).
pub fn too_deep() -> Vec<u8> {
    format!(r#"{{"key":"Zm9v","junk":{}{}}}"#, "[".repeat(10_001), "]".repeat(10_001)).into_bytes()
}

pub const TOO_DEEP_MESSAGE: &str = "invalid character '[' exceeded max depth";
