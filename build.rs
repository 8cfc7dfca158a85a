//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed),
//! generates the tonic and prost code, and writes the encoded descriptor set
//! that the server's reflection service publishes.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "medassist/v1/settlement.proto",
    "medassist/v1/usage.proto",
    "medassist/v1/roster.proto",
    "medassist/v1/policy.proto",
    "medassist/v1/admin.proto",
    "medassist/v1/reconciliation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("medassist_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The vendored google/rpc protos are tonic-types' own messages.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(descriptors)?;
    Ok(())
}
