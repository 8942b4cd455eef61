"""Run Caffe nets forward with OpenCV on seeded random input.

Reads a JSON list of jobs from stdin:
  {"id", "prototxt", "caffemodel", "input_shape": [N, C, H, W],
   "input_name": name or null, "seed": int, "outputs": null or [names]}
The input is default_rng(seed).standard_normal as float32, so the same
seed and shape give the same input. Each output blob is saved as an .npy
file in the directory given as the first argument. Writes a JSON list of
{"id", "ok", "error", "outputs": [{"name", "shape", "path"}]} to stdout
in job order. A job that fails reports ok false and OpenCV's error.
"""

import json
import os
import sys
import tempfile

import cv2
import numpy as np


def read_net(prototxt, caffemodel):
    """Return (net, error) from cv2.dnn.readNetFromCaffe.

    libprotobuf prints the reason a text file does not parse to file
    descriptor 2 and cv2.error leaves it out, so fd 2 goes to a temporary
    file during the call and its text is added to the error.
    """
    args = [prototxt] + ([caffemodel] if caffemodel else [])
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            return cv2.dnn.readNetFromCaffe(*args), ""
        except cv2.error as e:
            error = str(e).strip()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        printed = log.read().decode(errors="replace").strip()
    return None, (printed + "\n" + error).strip()


def forward(index, job, out_dir):
    result = {"id": job["id"], "ok": False, "error": "", "outputs": []}
    net, error = read_net(job["prototxt"], job.get("caffemodel"))
    if net is None:
        result["error"] = error
        return result
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    rng = np.random.default_rng(job["seed"])
    blob = rng.standard_normal(job["input_shape"], dtype=np.float32)
    names = job.get("outputs") or list(net.getUnconnectedOutLayersNames())
    try:
        if job.get("input_name"):
            net.setInput(blob, job["input_name"])
        else:
            net.setInput(blob)
        outs = net.forward(names)
    except cv2.error as e:
        result["error"] = str(e).strip()
        return result

    for k, (name, out) in enumerate(zip(names, outs)):
        path = os.path.join(out_dir, "%d_%d.npy" % (index, k))
        np.save(path, out)
        result["outputs"].append({"name": name, "shape": list(out.shape), "path": path})
    result["ok"] = True
    return result


def main():
    out_dir = sys.argv[1]
    jobs = json.load(sys.stdin)
    json.dump([forward(i, job, out_dir) for i, job in enumerate(jobs)], sys.stdout)


if __name__ == "__main__":
    main()
