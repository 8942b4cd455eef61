#!/usr/bin/env bash
# Runs the whole test suite, oracle cross-checks included, after
# installing the oracles. The shared corpus must be at ../shared beside
# the repository (or at $TLSURGERY_SHARED). With CI=true a missing oracle
# or corpus fails the tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-oracles.sh
go vet ./...
go test -count=1 ./...

# Each fuzz target runs briefly on top of its seed corpus.
fuzztime=${FUZZTIME:-10s}
for target in ./caffe/:FuzzParseText ./caffe/:FuzzDecodeBinary ./caffe/:FuzzReadMean ./graph/:FuzzInfer; do
  go test -run='^$' -fuzz="^${target#*:}\$" -fuzztime="$fuzztime" "${target%%:*}"
done
