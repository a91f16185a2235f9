#!/usr/bin/env bash
# Regenerates the committed Swift messages from the .proto files beside this script.
# Needs Debian's protoc (protobuf-compiler) and protoc-gen-swift built from the swift-protobuf
# version that Package.swift names (the SwiftPM build plugin is avoided: it compiles protoc, ~10 min):
#   git clone <swift-protobuf> sp && cd sp && git checkout 1.39.0 && swift build -c release --product protoc-gen-swift
#   PROTOC_GEN_SWIFT=sp/.build/release/protoc-gen-swift ./generate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
out="$here/../Generated"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$here" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  --swift_out="$out" "$here"/ttrpc.proto "$here"/agent.proto
