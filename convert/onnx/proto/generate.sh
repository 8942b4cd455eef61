#!/usr/bin/env bash
# Generates onnx.pb.go from onnx.proto with /usr/bin/protoc and the
# protoc-gen-go version that go.mod pins.
#
# Usage: bash convert/onnx/proto/generate.sh [OUTPUT_DIR]
# OUTPUT_DIR defaults to convert/onnx/onnxpb. CI can pass a temporary
# directory and diff the result against the committed file.
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_root="$(cd "$proto_dir/../../.." && pwd)"
out_dir="${1:-$module_root/convert/onnx/onnxpb}"

protoc=/usr/bin/protoc
if [[ ! -x "$protoc" ]]; then
  echo "generate.sh: $protoc not found; install Debian's protobuf-compiler" >&2
  exit 1
fi

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$module_root" && go build -o "$tmp/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)

# Run from the schema directory so that the generated file records the
# source path "onnx.proto" whatever the checkout path is.
cd "$proto_dir"
"$protoc" \
  --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
  --proto_path=. \
  --go_out="$out_dir" \
  --go_opt=paths=source_relative \
  onnx.proto
