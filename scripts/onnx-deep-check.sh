#!/usr/bin/env bash
# Exports VGG-16 (and any other deploy nets named as arguments, corpus
# paths such as prototxt/vgg/VGG_ILSVRC_19_layers_deploy_upgraded_V2.prototxt)
# to ONNX with drawn weights, and compares ONNX Runtime with OpenCV's Caffe
# importer within 1e-4 relative difference. It runs the same test as
# go test ./convert/onnx, TestRuntimeDeepNets, on nets that are too large
# for the default test run: VGG-16 writes about 1.1 GB of temporary files.
set -euo pipefail
cd "$(dirname "$0")/.."

nets=("$@")
if ((${#nets[@]} == 0)); then
  nets=(prototxt/vgg/VGG_ILSVRC_16_layers_deploy_upgraded_V2.prototxt)
fi
bash scripts/install-oracles.sh
TLSURGERY_ONNX_DEEP="$(IFS=,; echo "${nets[*]}")" \
  go test -count=1 -timeout 30m -run '^TestRuntimeDeepNets$' -v ./convert/onnx/
