package onnx

import (
	"github.com/tlsurgery/tlsurgery/graph"
)

func init() {
	register(mapDataLayer, dataLayerTypes...)
	register(mapIdentity, "Dropout", "Split")
	register(mapSilence, "Silence")
	register(mapTrainOnly, "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
		"InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "SmoothL1Loss", "MultiBoxLoss",
		"Accuracy", "SegAccuracy")
}

// dataLayerTypes are the layers whose tops become graph inputs: Caffe's
// Input and the layers that read data from files or memory, which an
// ONNX model receives from its caller instead.
var dataLayerTypes = []string{"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data",
	"WindowData", "AnnotatedData", "VideoData", "DenseImageData"}

func isDataLayer(t string) bool {
	for _, d := range dataLayerTypes {
		if d == t {
			return true
		}
	}
	return false
}

func mapDataLayer(c *converter, l *graph.Layer) error {
	for _, t := range l.Tops {
		c.addInput(t)
	}
	return nil
}

// mapIdentity maps Dropout, which Caffe's dropout_layer.cpp makes the
// identity at test time (it scales during training instead), and Split,
// whose split_layer.cpp shares the bottom with every top: one Identity per
// top.
func mapIdentity(c *converter, l *graph.Layer) error {
	if l.Type() == "Dropout" && len(l.Tops) != 1 {
		return unsupported(l, "Dropout has one top, the layer has %d", len(l.Tops))
	}
	for i := range l.Tops {
		c.unary("Identity", c.in(0), c.top(i))
	}
	return nil
}

// mapSilence maps Caffe's silence_layer.cpp, which only consumes its
// bottoms: no node.
func mapSilence(c *converter, l *graph.Layer) error { return nil }

func mapTrainOnly(c *converter, l *graph.Layer) error {
	return unsupported(l, "loss and accuracy layers need labels and only run in training; export the deploy net, or select the TEST phase without them")
}
