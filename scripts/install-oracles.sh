#!/usr/bin/env bash
# Installs the programs the tests need beyond Go: Debian's protoc (to check
# the generated code), OpenCV, NumPy and ONNX for Debian's Python (the
# numerical oracles), Graphviz, GNU time, and ONNX Runtime for Node
# (onnxruntime-node, pinned in internal/oracle/node/package-lock.json).
# Packages already present are left alone; apt-get runs only when
# something is missing, and Debian's nodejs and npm only when node is.
set -euo pipefail

packages=(protobuf-compiler python3-opencv python3-numpy python3-onnx python3-protobuf graphviz time)
command -v node >/dev/null || packages+=(nodejs npm)
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

# onnxruntime-node ships its CPU library in the npm package. Its install
# script would download GPU libraries, which ONNXRUNTIME_NODE_INSTALL=skip
# turns off. npm ci installs exactly the versions of package-lock.json.
ort_dir=internal/oracle/node
pinned=$(cd "$ort_dir" && node -p 'require("./package.json").dependencies["onnxruntime-node"]')
installed=$(cd "$ort_dir" && node -p 'require("./node_modules/onnxruntime-node/package.json").version' 2>/dev/null || true)
if [[ "$installed" != "$pinned" ]]; then
  echo "installing onnxruntime-node into $ort_dir/node_modules"
  (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
node -e 'const ort = require(process.argv[1]); console.log("oracles: ONNX Runtime", ort.env.versions.common, "for Node", process.version)' "$PWD/$ort_dir/node_modules/onnxruntime-node"
