"""Extract one feature vector per image with OpenCV's dnn module, the peer
of `tlsurgery features --npy`.

Usage: opencv_features.py PROTOTXT CAFFEMODEL INPUT.npy LAYER BATCH OUT.npy

INPUT.npy holds N preprocessed images (N×C×H×W float32). They go through
the net BATCH at a time, and the output of LAYER, flattened to one row per
image, is saved as an N×D float32 array. LAYER is an OpenCV layer name:
give the last layer that writes the blob, such as "drop7" for CaffeNet's
fc7 after its in-place ReLU and Dropout, because OpenCV reports an
in-place layer's value under that layer's own name.
"""

import sys

import cv2
import numpy as np


def main():
    if len(sys.argv) != 7 or not sys.argv[5].isdigit() or int(sys.argv[5]) < 1:
        sys.exit("usage: opencv_features.py PROTOTXT CAFFEMODEL INPUT.npy LAYER BATCH OUT.npy")
    prototxt, caffemodel, input_path, layer, batch, out = sys.argv[1:7]
    batch = int(batch)

    images = np.load(input_path)
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    rows = []
    for start in range(0, len(images), batch):
        net.setInput(np.ascontiguousarray(images[start : start + batch]))
        value = net.forward(layer)
        rows.append(value.reshape(value.shape[0], -1))
    codes = np.concatenate(rows).astype(np.float32)
    np.save(out, codes)
    print("wrote %s (%d×%d float32, layer %s)" % (out, codes.shape[0], codes.shape[1], layer))


if __name__ == "__main__":
    main()
