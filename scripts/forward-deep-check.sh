#!/usr/bin/env bash
# Compares the forward pass with OpenCV on the deploy nets too slow for CI
# (SSD300, VGG-16, FCN-8s, SegNet, PSPNet-50), with seeded weights, as
# TestOpenCVSeededNets does for the CI set. It needs the oracles
# (scripts/install-oracles.sh) and the shared corpus. Extra arguments go to
# go test, such as -run 'OpenCVDeep/SegNet'.
set -euo pipefail
cd "$(dirname "$0")/.."

TLSURGERY_DEEP=1 go test ./forward/ -run 'OpenCVDeep' -count=1 -timeout 60m -v "$@"
