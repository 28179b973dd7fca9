//! Generates the Rust types, gRPC servers and clients from `protos/`, and writes a file
//! descriptor set to `$OUT_DIR/cairn_descriptor.bin`, and serde impls (pbjson) for the JSON
//! gateway.
//!
//! protoc comes from `protoc-bin-vendored`, so no system protoc is needed.

use std::{env, error::Error, path::PathBuf};

const PROTOS: &[&str] = &[
    "protos/mvccpb/kv.proto",
    "protos/authpb/auth.proto",
    "protos/etcdserverpb/rpc.proto",
    "protos/v3lockpb/v3lock.proto",
    "protos/v3electionpb/v3election.proto",
    "protos/cairnpb/raft.proto",
    "protos/browserpb/browser.proto",
];

/// The packages the JSON gateway speaks: pbjson derives their serde impls, with etcd's
/// conventions (proto field names out, either name in, unknown fields ignored).
const JSON_PACKAGES: &[&str] = &[".mvccpb", ".authpb", ".etcdserverpb", ".v3lockpb", ".v3electionpb"];

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build picks protoc up from $PROTOC. Edition 2021: set_var is a safe fn here, and
    // the build script is single-threaded at this point.
    env::set_var("PROTOC", protoc);

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=protos");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptor_path = out_dir.join("cairn_descriptor.bin");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(PROTOS, &["protos"])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(JSON_PACKAGES)?;
    Ok(())
}
