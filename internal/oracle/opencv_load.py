"""Load Caffe nets with OpenCV's importer and report their layer names.

Reads a JSON list of {"id", "prototxt", "caffemodel"} from stdin, where
"caffemodel" may be null, and writes a JSON list of
{"id", "ok", "error", "layers"} to stdout in the same order.
"""

import json
import os
import sys
import tempfile

import cv2


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


def load(job):
    net, error = read_net(job["prototxt"], job.get("caffemodel"))
    layers = list(net.getLayerNames()) if net is not None else []
    return {"id": job["id"], "ok": net is not None, "error": error, "layers": layers}


def main():
    jobs = json.load(sys.stdin)
    json.dump([load(job) for job in jobs], sys.stdout)


if __name__ == "__main__":
    main()
