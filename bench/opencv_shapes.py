"""Time OpenCV's shape inference for a Caffe net: Net.getLayersShapes.

Usage: opencv_shapes.py PROTOTXT CAFFEMODEL N,C,H,W RUNS

OpenCV 4.6's Convolution and InnerProduct layers read their output and
kernel sizes from the weight blobs, so the net needs a caffemodel even for
shapes (its values do not matter). The script loads the net once and
calls getLayersShapes for the input shape once untimed, then RUNS times.
It prints one JSON line: the load time, the median and every call's wall
time in milliseconds, and the number of layers with shapes.
"""

import json
import statistics
import sys
import time

import cv2


def main():
    if len(sys.argv) != 5 or not sys.argv[4].isdigit() or int(sys.argv[4]) < 1:
        sys.exit("usage: opencv_shapes.py PROTOTXT CAFFEMODEL N,C,H,W RUNS")
    prototxt, caffemodel, dims, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    shape = [int(d) for d in dims.split(",")]

    start = time.perf_counter()
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    load_ms = (time.perf_counter() - start) * 1000

    ids, _, _ = net.getLayersShapes([shape])
    wall = []
    for _ in range(runs):
        wall_start = time.perf_counter()
        net.getLayersShapes([shape])
        wall.append((time.perf_counter() - wall_start) * 1000)

    report = {
        "runtime": "OpenCV %s" % cv2.__version__,
        "load_ms": load_ms,
        "median_ms": statistics.median(wall),
        "wall_ms": wall,
        "layers": len(ids),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
