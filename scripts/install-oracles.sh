#!/usr/bin/env bash
# Installs the programs the tests need beyond Go: Debian's protoc (to check
# the generated code), OpenCV, NumPy and ONNX for Debian's Python (the
# numerical oracles), Graphviz and GNU time. Packages already present are
# left alone; apt-get runs only when something is missing.
set -euo pipefail

packages=(protobuf-compiler python3-opencv python3-numpy python3-onnx python3-protobuf graphviz time)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
/usr/bin/python3 -c 'import cv2, numpy, onnx; print("oracles: OpenCV", cv2.__version__, "NumPy", numpy.__version__, "ONNX", onnx.__version__)'
