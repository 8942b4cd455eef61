"""Report the output shapes OpenCV infers for every layer of Caffe nets.

Reads a JSON list of {"id", "prototxt", "caffemodel", "inputs"} from
stdin, where "caffemodel" may be null and "inputs" maps each net input to
its shape, and writes a JSON list of {"id", "ok", "error", "layers"} to
stdout in the same order. "layers" maps each OpenCV layer name to the
shapes of its outputs from net.getLayersShapes, which infers shapes
without running the net. When the net does not load or shape inference
fails, "ok" is false, "error" gives OpenCV's messages and "layers" is
empty.

"inputs" needs a shape for every net input. getLayersShapes fails with
"inputs.size() == requiredOutputs" when a net input has no consumer, so
such inputs must be left out of the prototxt.

How OpenCV 4.6's Caffe importer names things (read from
modules/dnn/src/caffe/caffe_importer.cpp in opencv/opencv at 01048e5 and
in a later version, and checked with this script on Debian's OpenCV
4.6.0):

* Layer ids. Id 0 is the "_input" layer, whose outputs are the net
  inputs: the net-level "input" fields first, then the tops of each
  "Input" layer in declaration order. Its outputNameToIndex(name) gives
  the position of an input, which is how input_shapes orders them. Input
  layers get no id of their own. The other layers get ids 1, 2, ... in
  declaration order, so net.getLayerNames()[i - 1] is the name of layer
  i and net.getLayerId(name) is the inverse. The importer adds a layer
  "<name>/mvn" (MVN) before a BatchNorm layer with use_global_stats false,
  and a layer "<name>/scale" (Scale) before an Axpy layer, which becomes
  an Eltwise layer. It does not filter layers by phase.
* Names. A repeated layer name gets "_1", "_2", ... appended in
  declaration order ("crop", "crop_1", ...). A Convolution layer is the
  exception: the importer adds one layer per bottom and top pair, named
  after the top, so the Convolution layer "score-fr" with top "score" is
  the OpenCV layer "score". Its own name still counts for the suffixes.
* Tops. OpenCV does not address blobs by name: an output is a (layer id,
  output index) pair, and output i of a layer is its top i. A bottom
  connects to the latest earlier layer with that top. An in-place layer
  (top i equal to bottom i) has its own output. So the value after an
  in-place ReLU is reported under the ReLU's name, while the name of the
  layer before it (net.forward("ip1")) gives the value before the ReLU.
  A MAX Pooling layer whose outputs no layer reads reports two outputs,
  the second being its argmax mask.
* Fusion. OpenCV fuses layers (a ReLU into the layer before it, say) when
  it sets the net up for a forward pass. getLayersShapes does not: it
  reports every layer of every corpus net.

Convolution, Deconvolution and InnerProduct take their output and kernel
channel counts from their weight blobs, and without them getLayersShapes
fails (it expects the weights as a second input), so most nets need a
caffemodel. Its values do not matter, only the blob shapes.
"""

import ctypes
import ctypes.util
import json
import os
import sys
import tempfile

import cv2


def with_stderr(call):
    """Return (call(), "") or (None, message) when call raises cv2.error.

    OpenCV logs the failing layer and its input shapes to file descriptor
    2, and libprotobuf the reason a text file does not parse, but the
    exception leaves both out. So fd 2 goes to a temporary file during the
    call, and its text is added to the message.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            return call(), ""
        except cv2.error as e:
            error = str(e).strip()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        printed = log.read().decode(errors="replace").strip()
    return None, (printed + "\n" + error).strip()


def input_shapes(net, inputs):
    """Return the shapes of inputs in the order of the net's inputs.

    The "_input" layer maps an input name to its output index. A name it
    does not know raises ValueError, as does a gap in the indexes.
    """
    layer = net.getLayer(0)
    ordered = {}
    for name, shape in inputs.items():
        index = layer.outputNameToIndex(name)
        if index < 0:
            raise ValueError("OpenCV's net has no input named %r" % name)
        ordered[index] = [int(d) for d in shape]
    if sorted(ordered) != list(range(len(ordered))):
        raise ValueError("input indexes %s leave a gap: give a shape for every net input" % sorted(ordered))
    return [ordered[i] for i in range(len(ordered))]


def shapes(job):
    result = {"id": job["id"], "ok": False, "error": "", "layers": {}}
    args = [job["prototxt"]] + ([job["caffemodel"]] if job.get("caffemodel") else [])
    net, error = with_stderr(lambda: cv2.dnn.readNetFromCaffe(*args))
    if net is None:
        result["error"] = error
        return result
    if net.empty():
        # getLayersShapes dies with SIGSEGV on a net without layers.
        result["error"] = "OpenCV's net has no layers"
        return result
    try:
        shapes_in = input_shapes(net, job["inputs"])
    except ValueError as e:
        result["error"] = str(e)
        return result

    inferred, error = with_stderr(lambda: net.getLayersShapes(shapes_in))
    if inferred is None:
        result["error"] = error
        return result
    ids, _, outs = inferred
    for layer_id, out in zip(ids, outs):
        layer_id = int(layer_id)
        if layer_id == 0:
            continue
        name = net.getLayer(layer_id).name
        result["layers"][name] = [[int(d) for d in s.ravel()] for s in out]
    result["ok"] = True
    return result


def keep_freed_memory():
    """Make glibc's malloc reuse freed memory for large blocks.

    By default glibc gives blocks above its mmap threshold (at most 32 MiB
    on 64-bit systems) fresh mappings and unmaps them when they are freed.
    Each caffemodel's blobs, copied several times while loading, then cost
    page faults and zero-filling of fresh pages. With mmap off and no
    trimming, the heap keeps its pages from one net to the next. For the
    112 nets of TestOpenCVShapes on a 2-core VM, this cut the script's
    time from 13 s to 5-7 s (4.7 GB of float16 weights, 1.2 GB peak
    resident memory). Without glibc's mallopt, nothing changes.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # from glibc's malloc.h
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def main():
    keep_freed_memory()
    jobs = json.load(sys.stdin)
    json.dump([shapes(job) for job in jobs], sys.stdout)


if __name__ == "__main__":
    main()
