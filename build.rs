//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed),
//! generates the tonic and prost code, writes the encoded descriptor set that
//! the server's reflection service and HTTP/JSON gateway read, and generates
//! the OpenAPI document of every RPC annotated with `google.api.http`.

use std::{env, fs, path::PathBuf};

#[path = "build/openapi.rs"]
mod openapi;

const PROTOS: &[&str] = &[
    "medassist/v1/settlement.proto",
    "medassist/v1/usage.proto",
    "medassist/v1/roster.proto",
    "medassist/v1/policy.proto",
    "medassist/v1/admin.proto",
    "medassist/v1/reconciliation.proto",
    "medassist/v1/audit.proto",
    "medassist/v1/application.proto",
    "medassist/v1/statistics.proto",
    "medassist/v1/caller.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(PROTOS)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Encoded by protox itself, so method options keep their extensions
    // (the google.api.http rules), which a prost round trip would drop.
    fs::write(
        out_dir.join("medassist_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let document = openapi::document(&compiler.descriptor_pool(), env!("CARGO_PKG_VERSION"))?;
    fs::write(
        out_dir.join("openapi.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The vendored google/rpc protos are tonic-types' own messages.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
