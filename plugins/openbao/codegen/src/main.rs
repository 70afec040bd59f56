//! Writes the gRPC code of the plugin protocol into `plugins/openbao/src/pb/` (see proto/regen.sh).
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let proto = root.join("proto");
    let out = root.join("src/pb");
    std::fs::create_dir_all(&out).unwrap();
    // SAFETY: single-threaded at this point; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path().unwrap()) };
    let include = protoc_bin_vendored::include_path().unwrap();
    tonic_prost_build::configure()
        .out_dir(&out)
        .build_transport(false)
        .compile_protos(
            &[
                proto.join("sdk/plugin/pb/backend.proto"),
                proto.join("sdk/logical/version.proto"),
                proto.join("go-plugin/grpc_broker.proto"),
                proto.join("go-plugin/grpc_controller.proto"),
            ],
            &[proto.clone(), include],
        )
        .unwrap();
}
