"""Time the forward pass of a Caffe net with OpenCV's dnn module.

Usage: opencv_forward.py PROTOTXT CAFFEMODEL INPUT.npy RUNS

Loads the net once with cv2.dnn.readNetFromCaffe, with the default
backend and target (OpenCV's own CPU code, cv2.getNumThreads() threads).
Sets the .npy array as its input and runs net.forward() once untimed, then
RUNS times. Prints one JSON line: the load time, the median and every
run's wall and CPU time in milliseconds, and the output shape. With RUNS
0 it loads and runs the one untimed forward pass only, which is the work
of `tlsurgery run` apart from writing the output. CPU time is
time.process_time(), the user plus system time of all threads.
"""

import json
import statistics
import sys
import time

import cv2
import numpy as np


def main():
    if len(sys.argv) != 5 or not sys.argv[4].isdigit():
        sys.exit("usage: opencv_forward.py PROTOTXT CAFFEMODEL INPUT.npy RUNS")
    prototxt, caffemodel, input_path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    start = time.perf_counter()
    blob = np.load(input_path)
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setInput(blob)
    load_ms = (time.perf_counter() - start) * 1000

    out = net.forward()
    wall, cpu = [], []
    for _ in range(runs):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        out = net.forward()
        wall.append((time.perf_counter() - wall_start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)

    report = {
        "runtime": "OpenCV %s, %d threads" % (cv2.__version__, cv2.getNumThreads()),
        "load_ms": load_ms,
        "median_ms": statistics.median(wall) if wall else None,
        "median_cpu_ms": statistics.median(cpu) if cpu else None,
        "wall_ms": wall,
        "cpu_ms": cpu,
        "output_shape": list(out.shape),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
