"""Run a Caffe net forward with OpenCV on an input read from an .npy file.

Reads one JSON job from stdin:
  {"prototxt", "caffemodel", "input": path of an N x C x H x W .npy,
   "input_name": name or null, "outputs": [layer names], "out_dir"}
OpenCV names a blob by the layer that last wrote it, so the final value
of a blob written in place (LeNet's ip1 after relu1) is the output of
the in-place layer ("relu1"). Layer fusion is turned off so that every
layer's own output can be read. Each output is saved as
out_dir/NAME.npy (float32), and a JSON object {"NAME": shape} is
written to stdout.
"""

import json
import os
import sys

import cv2
import numpy as np


def main():
    job = json.load(sys.stdin)
    net = cv2.dnn.readNetFromCaffe(job["prototxt"], job["caffemodel"])
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableFusion(False)

    blob = np.ascontiguousarray(np.load(job["input"]).astype(np.float32))
    if job.get("input_name"):
        net.setInput(blob, job["input_name"])
    else:
        net.setInput(blob)
    names = job["outputs"]
    outs = net.forward(names)

    shapes = {}
    for name, out in zip(names, outs):
        np.save(os.path.join(job["out_dir"], name + ".npy"), out.astype(np.float32))
        shapes[name] = list(out.shape)
    json.dump(shapes, sys.stdout)


if __name__ == "__main__":
    main()
