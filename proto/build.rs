//! Generates the Rust types, gRPC servers and clients from `protos/`, and writes a file
//! descriptor set (which the JSON gateway reads its message schemas from) to
//! `$OUT_DIR/cairn_descriptor.bin`.
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

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // tonic-prost's codec with a cheaper encoder (src/codec.rs).
        .codec_path("crate::codec::ProtoCodec")
        .file_descriptor_set_path(out_dir.join("cairn_descriptor.bin"))
        .compile_protos(PROTOS, &["protos"])?;
    Ok(())
}
