#!/usr/bin/env bash
# Regenerates the committed CRI v1 messages and grpc-swift-2 service code in Generated/ from the CRI
# contract (kubernetes/cri-api pkg/apis/runtime/v1/api.proto; default: ../shared/cri-api beside the repo).
# Needs a protoc that knows `debug_redact` (protobuf >= 22; Debian 12's 3.21 does not):
#   pip install grpcio-tools     # provides `python3 -m grpc_tools.protoc`
# and the plugins built from the versions Package.swift names:
#   swift-protobuf 1.39.0:       swift build -c release --product protoc-gen-swift
#   grpc-swift-protobuf 2.4.1:   swift build -c release --product protoc-gen-grpc-swift-2
#   PROTOC_GEN_SWIFT=… PROTOC_GEN_GRPC_SWIFT=… ./generate.sh [path/to/api.proto]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(realpath "${1:-$here/../../../shared/cri-api/api.proto}")
out="$here/Generated"
mkdir -p "$out"
python3 -m grpc_tools.protoc --proto_path="$(dirname "$proto")" \
  --plugin=protoc-gen-swift="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}" \
  --plugin=protoc-gen-grpc-swift="${PROTOC_GEN_GRPC_SWIFT:-$(command -v protoc-gen-grpc-swift-2)}" \
  --swift_opt=Visibility=Public --swift_out="$out" \
  --grpc-swift_opt=Visibility=Public,Server=true,Client=true --grpc-swift_out="$out" \
  "$proto"
