// Times the forward pass of an ONNX model with ONNX Runtime for Node
// (onnxruntime-node, CPU execution provider, default session options):
//
//   node bench/ort_forward.js MODEL.onnx INPUT.npy RUNS
//
// Loads the model once, feeds the little-endian float32 .npy array to the
// model's only input, and runs once untimed, then RUNS times. Prints one
// JSON line: the session load time, the median and every run's wall and
// CPU time in milliseconds, the output shape, and the ONNX Runtime
// version. CPU time is process.cpuUsage() (user plus system, all threads).
//
// The module is loaded from the folder in $TLSURGERY_ORT_MODULES, or from
// internal/oracle/node/node_modules, which scripts/install-oracles.sh fills.

"use strict";

const fs = require("fs");
const path = require("path");

// readNpy returns {shape, data: Float32Array} of a little-endian float32
// .npy file in C order (format versions 1.0 to 3.0).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") {
    throw new Error(file + " is not an .npy file");
  }
  const major = buf[6];
  const start = major === 1 ? 10 : 12;
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const header = buf.toString("latin1", start, start + headerLength);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
    throw new Error(file + ": expected little-endian float32 in C order, the header is " + header.trim());
  }
  const shape = header
    .match(/'shape': \(([^)]*)\)/)[1]
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);
  // Copy the values so that the Float32Array starts at a 4-byte boundary.
  const bytes = buf.subarray(start + headerLength);
  const data = new Float32Array(bytes.length / 4);
  new Uint8Array(data.buffer).set(bytes);
  return { shape, data };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// cpuMilliseconds returns the process's user plus system time since start.
function cpuMilliseconds(start) {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function main() {
  const [modelPath, inputPath, runsText] = process.argv.slice(2);
  const runs = Number(runsText);
  if (!modelPath || !inputPath || !Number.isInteger(runs) || runs < 1) {
    process.stderr.write("usage: node bench/ort_forward.js MODEL.onnx INPUT.npy RUNS\n");
    process.exit(2);
  }
  const modules = process.env.TLSURGERY_ORT_MODULES || path.join(__dirname, "..", "internal", "oracle", "node", "node_modules");
  const ort = require(path.join(modules, "onnxruntime-node"));

  const loadStart = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(modelPath);
  const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
  if (session.inputNames.length !== 1) {
    throw new Error(modelPath + " has " + session.inputNames.length + " inputs; this script feeds one");
  }
  const input = readNpy(inputPath);
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input.data, input.shape) };

  let outputs = await session.run(feeds);
  const wall = [];
  const cpu = [];
  for (let i = 0; i < runs; i++) {
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    outputs = await session.run(feeds);
    wall.push(Number(process.hrtime.bigint() - start) / 1e6);
    cpu.push(cpuMilliseconds(cpuStart));
  }
  const first = outputs[session.outputNames[0]];
  process.stdout.write(
    JSON.stringify({
      runtime: "ONNX Runtime " + ort.env.versions.common,
      load_ms: loadMs,
      median_ms: median(wall),
      median_cpu_ms: median(cpu),
      wall_ms: wall,
      cpu_ms: cpu,
      output_shape: first.dims.map(Number),
    }) + "\n"
  );
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
