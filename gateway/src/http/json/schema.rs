//! The shapes of etcd's messages and methods, read once from the descriptor set that
//! `cairn-proto` compiles in. The transcoder walks JSON and protobuf wire bytes with it, the way
//! golang/protobuf's reflection-based `jsonpb` does in etcd's gateway.

use std::collections::HashMap;
use std::sync::OnceLock;

/// `google/protobuf/descriptor.proto`, which the gRPC metrics read too.
use prost_types as descriptor;

/// A field's type, as `FieldDescriptorProto.Type` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Fixed64,
    Fixed32,
    Bool,
    String,
    Message(usize),
    Bytes,
    Uint32,
    Enum(usize),
    Sfixed32,
    Sfixed64,
    Sint32,
    Sint64,
}

#[derive(Debug)]
pub struct Field {
    /// The proto name, which etcd's gateway writes (`create_revision`).
    pub name: String,
    /// The lowerCamel name, which it also reads (`createRevision`).
    pub json_name: String,
    pub number: u32,
    pub kind: Kind,
    pub repeated: bool,
    /// Index of the oneof (real or proto3-optional) the field belongs to.
    pub oneof: Option<usize>,
}

#[derive(Debug)]
pub struct Message {
    pub full_name: String,
    pub fields: Vec<Field>,
}

#[derive(Debug)]
pub struct Enum {
    pub full_name: String,
    pub values: Vec<(String, i32)>,
}

impl Enum {
    pub fn by_name(&self, name: &[u8]) -> Option<i32> {
        self.values.iter().find(|(n, _)| n.as_bytes() == name).map(|&(_, number)| number)
    }

    /// The first name declared for `number` (an alias never wins), as protoreflect's `ByNumber`.
    pub fn by_number(&self, number: i32) -> Option<&str> {
        self.values.iter().find(|&&(_, n)| n == number).map(|(name, _)| name.as_str())
    }
}

/// One gRPC method: the messages it takes and returns, and which sides stream.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    pub input: usize,
    pub output: usize,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

#[derive(Debug)]
pub struct Schema {
    pub messages: Vec<Message>,
    pub enums: Vec<Enum>,
    /// By gRPC path, `/etcdserverpb.KV/Range`.
    methods: HashMap<String, Method>,
}

impl Schema {
    /// The schema of every message `cairn-proto` compiles.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let set = <descriptor::FileDescriptorSet as prost::Message>::decode(cairn_proto::FILE_DESCRIPTOR_SET)
                .expect("cairn-proto's compiled-in descriptor set decodes");
            Schema::from_set(&set)
        })
    }

    pub fn method(&self, grpc_path: &str) -> Option<Method> {
        self.methods.get(grpc_path).copied()
    }

    pub fn message(&self, index: usize) -> &Message {
        &self.messages[index]
    }

    pub fn enumeration(&self, index: usize) -> &Enum {
        &self.enums[index]
    }

    fn from_set(set: &descriptor::FileDescriptorSet) -> Schema {
        // Names first, so that fields can point at any message or enum by index.
        let mut names = Names::default();
        for file in &set.file {
            let package = file.package.clone().unwrap_or_default();
            names.collect(&package, &file.message_type, &file.enum_type);
        }
        let mut schema = Schema { messages: Vec::new(), enums: Vec::new(), methods: HashMap::new() };
        for (full_name, message) in &names.messages {
            schema.messages.push(Message { full_name: full_name.clone(), fields: message.field.iter().map(|f| names.field(f)).collect() });
        }
        for (full_name, enumeration) in &names.enums {
            let values = enumeration.value.iter().map(|v| (v.name.clone().unwrap_or_default(), v.number.unwrap_or_default())).collect();
            schema.enums.push(Enum { full_name: full_name.clone(), values });
        }
        for file in &set.file {
            let package = file.package.clone().unwrap_or_default();
            for service in &file.service {
                for method in &service.method {
                    let (Some(input), Some(output)) = (names.message_index(method.input_type.as_deref()), names.message_index(method.output_type.as_deref())) else {
                        continue;
                    };
                    let path = format!("/{package}.{}/{}", service.name.as_deref().unwrap_or_default(), method.name.as_deref().unwrap_or_default());
                    let method = Method {
                        input,
                        output,
                        client_streaming: method.client_streaming.unwrap_or(false),
                        server_streaming: method.server_streaming.unwrap_or(false),
                    };
                    schema.methods.insert(path, method);
                }
            }
        }
        schema
    }
}

/// Every message and enum by full name (no leading dot), in the order they are numbered.
#[derive(Default)]
struct Names {
    messages: Vec<(String, descriptor::DescriptorProto)>,
    message_index: HashMap<String, usize>,
    enums: Vec<(String, descriptor::EnumDescriptorProto)>,
    enum_index: HashMap<String, usize>,
}

impl Names {
    fn collect(&mut self, scope: &str, messages: &[descriptor::DescriptorProto], enums: &[descriptor::EnumDescriptorProto]) {
        for enumeration in enums {
            let full_name = qualify(scope, enumeration.name.as_deref().unwrap_or_default());
            self.enum_index.insert(full_name.clone(), self.enums.len());
            self.enums.push((full_name, enumeration.clone()));
        }
        for message in messages {
            let full_name = qualify(scope, message.name.as_deref().unwrap_or_default());
            self.message_index.insert(full_name.clone(), self.messages.len());
            self.messages.push((full_name.clone(), message.clone()));
            self.collect(&full_name, &message.nested_type, &message.enum_type);
        }
    }

    fn message_index(&self, type_name: Option<&str>) -> Option<usize> {
        self.message_index.get(type_name?.trim_start_matches('.')).copied()
    }

    fn field(&self, f: &descriptor::FieldDescriptorProto) -> Field {
        const LABEL_REPEATED: i32 = 3;
        let name = f.name.clone().unwrap_or_default();
        let type_name = f.type_name.as_deref().unwrap_or_default().trim_start_matches('.');
        let kind = match f.r#type.unwrap_or_default() {
            1 => Kind::Double,
            2 => Kind::Float,
            3 => Kind::Int64,
            4 => Kind::Uint64,
            5 => Kind::Int32,
            6 => Kind::Fixed64,
            7 => Kind::Fixed32,
            8 => Kind::Bool,
            9 => Kind::String,
            11 => Kind::Message(self.message_index[type_name]),
            12 => Kind::Bytes,
            13 => Kind::Uint32,
            14 => Kind::Enum(self.enum_index[type_name]),
            15 => Kind::Sfixed32,
            16 => Kind::Sfixed64,
            17 => Kind::Sint32,
            18 => Kind::Sint64,
            other => panic!("field {name}: protobuf type {other} (groups) is not in etcd's API"),
        };
        Field {
            json_name: f.json_name.clone().unwrap_or_else(|| json_camel_case(&name)),
            name,
            number: f.number.unwrap_or_default() as u32,
            kind,
            repeated: f.label == Some(LABEL_REPEATED),
            oneof: f.oneof_index.map(|i| i as usize),
        }
    }
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

/// protoc's default JSON name: underscores dropped, the letter after one upper-cased.
fn json_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut after_underscore = false;
    for c in name.chars() {
        if c == '_' {
            after_underscore = true;
            continue;
        }
        out.push(if after_underscore { c.to_ascii_uppercase() } else { c });
        after_underscore = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_methods_and_names_are_known() {
        let schema = Schema::get();
        let range = schema.method("/etcdserverpb.KV/Range").expect("KV.Range");
        assert_eq!(schema.message(range.input).full_name, "etcdserverpb.RangeRequest");
        let watch = schema.method("/etcdserverpb.Watch/Watch").expect("Watch.Watch");
        assert!(watch.client_streaming && watch.server_streaming);
        let compare = schema.messages.iter().find(|m| m.full_name == "etcdserverpb.Compare").expect("Compare");
        let field = compare.fields.iter().find(|f| f.name == "create_revision").expect("create_revision");
        assert_eq!(field.json_name, "createRevision");
        assert!(field.oneof.is_some());
        let grant = schema.messages.iter().find(|m| m.full_name == "etcdserverpb.LeaseGrantRequest").expect("LeaseGrantRequest");
        assert_eq!(grant.fields[0].name, "TTL");
        assert_eq!(grant.fields[0].json_name, "TTL");
    }
}
