package graph

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Rules for loss and accuracy layers. Caffe's loss_layer.cpp gives every
// loss a 0-axis scalar top and requires bottoms 0 and 1 to agree on their
// first axis (the batch). A loss costs an estimated 2 operations per
// element of bottom 0 (a difference, product or log, and its share of the
// sum) unless its rule gives another count.
func init() {
	register(&Rule{
		// Caffe's softmax_loss_layer.cpp: one label per position outside
		// softmax_param.axis (default 1), so bottom 1 contains outer × inner
		// values. An optional top 1 is the probabilities, shaped as bottom 0.
		Types:      []string{"SoftmaxWithLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 2); err != nil {
				return nil, err
			}
			return probabilityLossTops(c, int(c.Layer.GetSoftmaxParam().GetAxis()), "softmax_param.axis")
		}),
		// Softmax's 3 operations per element plus one log per label.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, 3*shapeProduct(c.Bottoms[0]) + shapeProduct(c.Bottoms[1])
		},
	})

	register(&Rule{
		// Caffe's infogain_loss_layer.cpp: labels as for SoftmaxWithLoss,
		// with classes on infogain_loss_param.axis (default 1). The K × K
		// infogain matrix comes from a file or from a third bottom with K²
		// values. An optional top 1 is the probabilities.
		Types:      []string{"InfogainLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 3); err != nil {
				return nil, err
			}
			out, err := probabilityLossTops(c, int(c.Layer.GetInfogainLossParam().GetAxis()), "infogain_loss_param.axis")
			if err != nil {
				return nil, err
			}
			if len(c.Bottoms) == 3 {
				axis, _ := canonicalAxisIndex(int(c.Layer.GetInfogainLossParam().GetAxis()), len(c.Bottoms[0]), "infogain_loss_param.axis")
				k := int64(c.Bottoms[0][axis])
				if got := shapeProduct(c.Bottoms[2]); got != k*k {
					return nil, fmt.Errorf("the infogain matrix (bottom 2) %v has %d values; %d classes need %d × %d", c.Bottoms[2], got, k, k, k)
				}
			}
			return out, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// Caffe's euclidean_loss_layer.cpp: both bottoms have the same
		// number of values per item.
		Types:      []string{"EuclideanLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 2); err != nil {
				return nil, err
			}
			a, b := c.Bottoms[0], c.Bottoms[1]
			if countBetween(a, 1, len(a)) != countBetween(b, 1, len(b)) {
				return nil, fmt.Errorf("bottom 0 %v and bottom 1 %v need the same number of values per item", a, b)
			}
			return [][]int{{}}, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// Caffe's sigmoid_cross_entropy_loss_layer.cpp: one target per
		// prediction, so both bottoms have the same element count.
		Types:      []string{"SigmoidCrossEntropyLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 2); err != nil {
				return nil, err
			}
			if a, b := shapeProduct(c.Bottoms[0]), shapeProduct(c.Bottoms[1]); a != b {
				return nil, fmt.Errorf("bottom 0 %v has %d values and bottom 1 %v has %d; one target per prediction is needed", c.Bottoms[0], a, c.Bottoms[1], b)
			}
			return [][]int{{}}, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// Caffe's hinge_loss_layer.cpp: one label per item of bottom 0.
		Types:      []string{"HingeLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 2); err != nil {
				return nil, err
			}
			if n := shapeProduct(c.Bottoms[1]); n != int64(c.Bottoms[0][0]) {
				return nil, fmt.Errorf("the labels (bottom 1) %v have %d values; HingeLoss needs one per item, %d", c.Bottoms[1], n, c.Bottoms[0][0])
			}
			return [][]int{{}}, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// Caffe's multinomial_logistic_loss_layer.cpp: one label per item,
		// so bottom 1's channels, height and width are 1. It reads one
		// probability per label: one log each.
		Types:      []string{"MultinomialLogisticLoss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 2); err != nil {
				return nil, err
			}
			d, err := legacyDims(c.Bottoms[1], "bottom 1 (labels)")
			if err != nil {
				return nil, err
			}
			if d[1] != 1 || d[2] != 1 || d[3] != 1 {
				return nil, fmt.Errorf("the labels (bottom 1) %v need one value per item (channels, height and width 1)", c.Bottoms[1])
			}
			return [][]int{{}}, nil
		}),
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, shapeProduct(c.Bottoms[1])
		},
	})

	register(&Rule{
		// Caffe's contrastive_loss_layer.cpp: two N × C (× 1 × 1) feature
		// bottoms and an N × 1 similarity label.
		Types:      []string{"ContrastiveLoss"},
		MinBottoms: 3,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 3, 3); err != nil {
				return nil, err
			}
			var d [3][4]int
			for i := range d {
				var err error
				if d[i], err = legacyDims(c.Bottoms[i], fmt.Sprintf("bottom %d", i)); err != nil {
					return nil, err
				}
			}
			if d[0][1] != d[1][1] || d[0][2] != 1 || d[0][3] != 1 || d[1][2] != 1 || d[1][3] != 1 {
				return nil, fmt.Errorf("bottoms 0 %v and 1 %v need the same channels and height and width 1", c.Bottoms[0], c.Bottoms[1])
			}
			if d[2][1] != 1 || d[2][2] != 1 || d[2][3] != 1 {
				return nil, fmt.Errorf("the similarity label (bottom 2) %v needs one value per item", c.Bottoms[2])
			}
			return [][]int{{}}, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// Fast R-CNN's smooth_l1_loss_layer.cpp (SSD's copy is alike):
		// predictions, targets and optional inside and outside weights,
		// all with the channels, height and width of bottom 0.
		Types:      []string{"SmoothL1Loss"},
		MinBottoms: 2,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 2, 4); err != nil {
				return nil, err
			}
			first, err := legacyDims(c.Bottoms[0], "bottom 0")
			if err != nil {
				return nil, err
			}
			for i, b := range c.Bottoms[1:] {
				d, err := legacyDims(b, fmt.Sprintf("bottom %d", i+1))
				if err != nil {
					return nil, err
				}
				if d[1] != first[1] || d[2] != first[2] || d[3] != first[3] {
					return nil, fmt.Errorf("bottom %d %v and bottom 0 %v need the same channels, height and width", i+1, b, c.Bottoms[0])
				}
			}
			return [][]int{{}}, nil
		}),
		Cost: lossCost,
	})

	register(&Rule{
		// SSD's multibox_loss_layer.cpp: bottoms loc, conf, priors and
		// ground truth, checked as for DetectionOutput. Its cost (matching
		// and hard-negative mining) depends on the data and is not counted.
		Types:      []string{"MultiBoxLoss"},
		MinBottoms: 4,
		Tops: lossTops(func(c *Context) ([][]int, error) {
			if err := lossBatch(c, 4, 4); err != nil {
				return nil, err
			}
			p := cmp.Or(c.Layer.GetMultiboxLossParam(), &caffepb.MultiBoxLossParameter{})
			if p.NumClasses == nil || p.GetNumClasses() < 1 {
				return nil, fmt.Errorf("multibox_loss_param.num_classes must be given and positive")
			}
			locClasses := 1
			if !p.GetShareLocation() {
				locClasses = int(p.GetNumClasses())
			}
			if err := checkPriorBottoms(c, locClasses, int(p.GetNumClasses())); err != nil {
				return nil, err
			}
			return [][]int{{}}, nil
		}),
	})

	register(&Rule{
		// Caffe's accuracy_layer.cpp: scores with classes on
		// accuracy_param.axis (default 1) and one label per other position;
		// top_k may not exceed the classes. Top 0 is the 0-axis accuracy;
		// an optional top 1 holds one accuracy per class.
		Types:      []string{"Accuracy"},
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, 2); err != nil {
				return nil, err
			}
			p := c.Layer.GetAccuracyParam()
			axis, err := labelAxis(c, int(p.GetAxis()), "accuracy_param.axis")
			if err != nil {
				return nil, err
			}
			classes := c.Bottoms[0][axis]
			if k := int(p.GetTopK()); k < 1 || k > classes {
				return nil, fmt.Errorf("accuracy_param.top_k %d must be between 1 and the %d classes", k, classes)
			}
			out := [][]int{{}}
			if len(c.Layer.GetTop()) > 1 {
				out = append(out, []int{classes})
			}
			return out, nil
		},
		// One comparison per score for each of the top_k picks.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, int64(c.Layer.GetAccuracyParam().GetTopK()) * shapeProduct(c.Bottoms[0])
		},
	})

	register(&Rule{
		// The SegAccuracy layer of DeepLab v2 and PSPNet
		// (seg_accuracy_layer.cpp): a label map of one channel with the
		// scores' num, height and width; every top is 1 × 1 × 1 × 3 (pixel
		// accuracy, mean recall, mean IoU, or per output_label precision,
		// recall and IoU).
		Types:      []string{"SegAccuracy"},
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, 2); err != nil {
				return nil, err
			}
			scores, err := legacyDims(c.Bottoms[0], "bottom 0 (scores)")
			if err != nil {
				return nil, err
			}
			labels, err := legacyDims(c.Bottoms[1], "bottom 1 (labels)")
			if err != nil {
				return nil, err
			}
			if labels[0] != scores[0] || labels[1] != 1 || labels[2] != scores[2] || labels[3] != scores[3] {
				return nil, fmt.Errorf("the labels %v need 1 channel and the num, height and width of the scores %v", c.Bottoms[1], c.Bottoms[0])
			}
			out := make([][]int, len(c.Layer.GetTop()))
			for i := range out {
				out[i] = []int{1, 1, 1, 3}
			}
			return out, nil
		},
		// One comparison per score (the arg max over channels).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, shapeProduct(c.Bottoms[0])
		},
	})
}

// lossTops wraps the rule of a type derived from Caffe's LossLayer. Caffe
// gives such a layer an anonymous top when it names none (AutoTopBlobs in
// loss_layer.hpp), so a layer without tops is valid and gets no shapes.
func lossTops(rule func(c *Context) ([][]int, error)) func(c *Context) ([][]int, error) {
	return func(c *Context) ([][]int, error) {
		out, err := rule(c)
		if err != nil || len(c.Layer.GetTop()) > 0 {
			return out, err
		}
		return [][]int{}, nil
	}
}

// lossBatch checks the bottom count and LossLayer's rule that bottoms 0
// and 1 agree on their first axis.
func lossBatch(c *Context, minCount, maxCount int) error {
	if err := requireBottoms(c, minCount, maxCount); err != nil {
		return err
	}
	a, b := c.Bottoms[0], c.Bottoms[1]
	if len(a) == 0 || len(b) == 0 {
		return fmt.Errorf("bottom 0 %v and bottom 1 %v need a batch axis", a, b)
	}
	if a[0] != b[0] {
		return fmt.Errorf("bottom 0 %v and bottom 1 %v have different batch sizes (%d and %d)", a, b, a[0], b[0])
	}
	return nil
}

// labelAxis resolves the class axis of bottom 0 and checks that bottom 1
// holds one label per position outside it.
func labelAxis(c *Context, axis int, field string) (int, error) {
	scores, labels := c.Bottoms[0], c.Bottoms[1]
	a, err := canonicalAxisIndex(axis, len(scores), field)
	if err != nil {
		return 0, err
	}
	want := countBetween(scores, 0, a) * countBetween(scores, a+1, len(scores))
	if got := shapeProduct(labels); got != want {
		return 0, fmt.Errorf("bottom 1 (labels) %v has %d values; scores %v with classes on axis %d need %d, one per position", labels, got, scores, a, want)
	}
	return a, nil
}

// probabilityLossTops is the rule of losses that compute class
// probabilities: a scalar loss and an optional top 1 with bottom 0's
// shape. The caller checks the bottoms with lossBatch first.
func probabilityLossTops(c *Context, axis int, field string) ([][]int, error) {
	if _, err := labelAxis(c, axis, field); err != nil {
		return nil, err
	}
	out := [][]int{{}}
	if len(c.Layer.GetTop()) > 1 {
		out = append(out, slices.Clone(c.Bottoms[0]))
	}
	return out, nil
}

func lossCost(c *Context, tops [][]int) (int64, int64) {
	return 0, 2 * shapeProduct(c.Bottoms[0])
}
