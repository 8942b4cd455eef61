package transfer

import (
	"fmt"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

// AdviseOptions describes the new data set.
type AdviseOptions struct {
	Samples int  // labelled samples in the new data set
	Classes int  // new classes; 0 when not known yet
	Similar bool // the new data resembles the data the net was trained on

	NetPath, WeightsPath string // used in the printed commands; WeightsPath may be empty
	Graph                graph.Options
}

// Advice names a transfer-learning scenario and what to do for one net.
type Advice struct {
	Scenario    string   `json:"scenario"`
	Explanation string   `json:"explanation"`
	Classifier  string   `json:"classifier"`   // the layer that computes the original class scores
	Features    string   `json:"features"`     // blob whose final value gives the codes for a linear classifier
	Freeze      string   `json:"freeze"`       // layer through which fine-tuning freezes the weights, or ""
	Commands    []string `json:"commands"`     // tlsurgery commands to run, with placeholders in capitals
	Reason      string   `json:"layer_choice"` // reason for the layer choice
}

// smallData is the size below which a data set counts as small: fewer
// than 1,000 samples per class, or fewer than 10,000 in all when the
// class count is unknown. Below it, fine-tuning millions of weights
// over-fits, and a linear classifier on fixed codes does better.
func smallData(samples, classes int) bool {
	if classes > 0 {
		return samples < 1000*classes
	}
	return samples < 10000
}

// Advise picks the scenario of the size × similarity table and the
// layers for net from its structure: the classifier is the last layer
// with weights on the way to the net's output; for similar data the codes
// are the classifier's input (the last hidden layer, after its ReLU); for
// different data they are the input of the fully-connected stack below
// the classifier (the last convolutional features, which are less
// specific to the original classes), or, when the classifier reads
// pooled features directly, the input of that pooling.
func Advise(net *caffe.Net, opts AdviseOptions) (*Advice, error) {
	if opts.Samples <= 0 {
		return nil, fmt.Errorf("transfer: give the number of labelled samples")
	}
	g := graph.Build(net, opts.Graph)
	g.Infer()
	cls, err := findClassifier(g)
	if err != nil {
		return nil, err
	}
	top := cls.Bottoms[0]
	lower, how := lowerFeatures(cls)

	a := &Advice{Classifier: cls.Name()}
	small := smallData(opts.Samples, opts.Classes)
	switch {
	case small && opts.Similar:
		a.Scenario = "small data set, similar to the original"
		a.Explanation = "With little data, fine-tuning millions of weights over-fits. The net's top-layer features already describe data like yours, so train a linear classifier on the codes of the last hidden layer."
		a.Features = top.Blob
		a.Reason = fmt.Sprintf("%q is the last hidden layer: the input of the classifier %q", top.Blob, cls.Name())
	case small:
		a.Scenario = "small data set, different from the original"
		a.Explanation = "With little data, fine-tuning over-fits, and the top layers are specific to the original classes. Train a linear classifier on features from an earlier layer, which are more generic."
		a.Features = lower.Blob
		a.Reason = fmt.Sprintf("%q is %s", lower.Blob, how)
	case opts.Similar:
		a.Scenario = "large data set, similar to the original"
		a.Explanation = "With enough data, fine-tune the whole net from the pretrained weights with a new classifier; the pretrained layers learn 10× slower than the new head."
	default:
		a.Scenario = "large data set, different from the original"
		a.Explanation = "With enough data, fine-tune the whole net; starting from the pretrained weights still helps. Give the pretrained layers a learning rate 10× smaller than the new head's."
	}

	// Every printed command needs weights; without them a placeholder
	// shows where they go.
	weights := opts.WeightsPath
	if weights == "" {
		weights = "WEIGHTS.caffemodel"
	}
	netArg := opts.NetPath + " " + weights
	classes := "K"
	if opts.Classes > 0 {
		classes = fmt.Sprint(opts.Classes)
	}
	if small {
		a.Commands = []string{
			fmt.Sprintf("tlsurgery truncate %s --at %s -o codes_net", netArg, a.Features),
			fmt.Sprintf("tlsurgery features codes_net.prototxt codes_net.caffemodel --layer %s IMAGES... -o codes.npy", a.Features),
			"tlsurgery linear codes.npy LABELS.txt --val 0.2 --net codes_net.prototxt --weights codes_net.caffemodel -o classifier",
		}
		return a, nil
	}
	a.Reason = fmt.Sprintf("the classifier %q is replaced by one with %s outputs", cls.Name(), classes)
	a.Commands = []string{
		fmt.Sprintf("tlsurgery finetune %s --classes %s --layer %s --base-lr 0.01 -o finetune", netArg, classes, cls.Name()),
		"caffe train --solver finetune/solver.prototxt --weights finetune/weights.caffemodel",
	}
	return a, nil
}

// findClassifier returns the last layer with weights on the path from
// the net's main output (a Softmax's input when there is one).
func findClassifier(g *graph.Graph) (*graph.Layer, error) {
	outs := g.Outputs()
	if len(outs) == 0 {
		return nil, fmt.Errorf("transfer: the net has no output")
	}
	v := outs[len(outs)-1]
	for v != nil && v.Producer != nil {
		l := v.Producer
		if len(l.Blobs) > 0 && !allStatistics(l) {
			if len(l.Bottoms) == 0 {
				break
			}
			return l, nil
		}
		if len(l.Bottoms) != 1 {
			break
		}
		v = l.Bottoms[0]
	}
	return nil, fmt.Errorf("transfer: found no layer with weights on the way to the output %q", outs[len(outs)-1].Blob)
}

func allStatistics(l *graph.Layer) bool {
	for _, b := range l.Blobs {
		if !b.Statistic {
			return false
		}
	}
	return true
}

// lowerFeatures walks down from the classifier through the stack of
// fully-connected layers (and the element-wise layers between them) and
// returns the value that feeds the stack, with a description.
func lowerFeatures(cls *graph.Layer) (*graph.Value, string) {
	v := cls.Bottoms[0]
	var stack []string
	for v.Producer != nil && len(v.Producer.Bottoms) == 1 {
		l := v.Producer
		switch {
		case l.Type() == "InnerProduct":
			stack = append(stack, l.Name())
		case isElementwise(l.Type()):
		default:
			if len(stack) > 0 {
				return v, fmt.Sprintf("the input of the fully-connected layers %s below the classifier", strings.Join(stack, ", "))
			}
			if strings.Contains(l.Type(), "Pooling") {
				return l.Bottoms[0], fmt.Sprintf("the input of the pooling %q that feeds the classifier", l.Name())
			}
			return v, "the input of the classifier"
		}
		v = l.Bottoms[0]
	}
	return v, "the lowest value reachable below the classifier"
}

func isElementwise(t string) bool {
	switch t {
	case "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "Dropout", "BatchNorm", "Scale", "Bias", "ReLU6", "Swish", "AbsVal", "BNLL", "Power":
		return true
	}
	return false
}
