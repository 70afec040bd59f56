#!/bin/sh
# Regenerates plugins/openbao/src/pb/ from these vendored protos (OpenBao's sdk/, MPL-2.0, and
# go-plugin's internal/plugin/, MPL-2.0; unmodified). The output is committed so that building the
# plugin needs neither protoc nor prost-build.
set -eu
cd "$(dirname "$0")/../codegen"
cargo run --quiet
