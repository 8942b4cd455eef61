// Run ONNX models with ONNX Runtime for Node (onnxruntime-node, CPU).
//
// Reads a JSON list of jobs from stdin:
//   {"id", "model": path of an .onnx file,
//    "inputs": {tensor name: path of a float32 .npy file}, "out_dir"}
// Runs each model once on its inputs and saves every graph output as a
// little-endian float32 .npy file "<out_dir>/<job index>_<output index>.npy"
// (integer outputs are converted to float32). Writes a JSON list of
// {"id", "ok", "error", "outputs": [{"name", "shape", "path"}]} to stdout
// in job order. A job that fails reports ok false and ONNX Runtime's error.
//
// The module is loaded from the folder in $TLSURGERY_ORT_MODULES (the
// node_modules folder that scripts/install-oracles.sh fills), or
// internal/oracle/node/node_modules beside this script.

"use strict";

const fs = require("fs");
const path = require("path");

function loadRuntime() {
  const modules = process.env.TLSURGERY_ORT_MODULES || path.join(__dirname, "node", "node_modules");
  return require(path.join(modules, "onnxruntime-node"));
}

// readNpy returns {shape, data: Float32Array} of a little-endian float32
// .npy file in C order (versions 1.0 to 3.0).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") {
    throw new Error(file + " is not an .npy file");
  }
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
    throw new Error(file + ": only little-endian float32 in C order is read, header " + header.trim());
  }
  const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(",").map((s) => s.trim()).filter((s) => s !== "");
  const shape = dims.map(Number);
  const offset = start + headerLen;
  const bytes = buf.subarray(offset);
  const data = new Float32Array(bytes.length / 4);
  for (let i = 0; i < data.length; i++) {
    data[i] = bytes.readFloatLE(4 * i);
  }
  return { shape, data };
}

// writeNpy writes values as a version 1.0 little-endian float32 .npy file.
function writeNpy(file, shape, values) {
  const dims = shape.length === 1 ? shape[0] + "," : shape.join(", ");
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * values.length);
  for (let i = 0; i < values.length; i++) {
    body.writeFloatLE(Number(values[i]), 4 * i);
  }
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
}

async function run(ort, index, job) {
  const result = { id: job.id, ok: false, error: "", outputs: [] };
  try {
    const session = await ort.InferenceSession.create(job.model, { graphOptimizationLevel: "disabled" });
    const feeds = {};
    for (const [name, file] of Object.entries(job.inputs)) {
      const a = readNpy(file);
      feeds[name] = new ort.Tensor("float32", a.data, a.shape);
    }
    const outputs = await session.run(feeds);
    session.outputNames.forEach((name, k) => {
      const t = outputs[name];
      const file = path.join(job.out_dir, index + "_" + k + ".npy");
      writeNpy(file, t.dims.map(Number), t.data);
      result.outputs.push({ name, shape: t.dims.map(Number), path: file });
    });
    result.ok = true;
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
  }
  return result;
}

async function main() {
  const ort = loadRuntime();
  const jobs = JSON.parse(fs.readFileSync(0, "utf8"));
  const results = [];
  for (let i = 0; i < jobs.length; i++) {
    results.push(await run(ort, i, jobs[i]));
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
