package transfer

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// Placeholders that a fine-tuning kit's train_val net carries where the
// user's data goes; Caffe refuses to start until they are replaced.
const (
	TrainSourcePlaceholder = "REPLACE_WITH_YOUR_TRAIN_LMDB"
	ValSourcePlaceholder   = "REPLACE_WITH_YOUR_VAL_LMDB"
)

// FinetuneOptions configures Finetune. Classes and BaseLR are required.
type FinetuneOptions struct {
	Classes       int     // outputs of the new classifier
	Layer         string  // classifier to replace; empty: as surgery.HeadOptions chooses
	FreezeThrough string  // freeze this layer and every layer it depends on; empty: train all
	BaseLR        float64 // learning rate of the new head; the solver's base_lr is 10× smaller
	BatchSize     int     // batch size of the placeholder data layers; 0 means 32
	StepSize      int     // solver stepsize; 0 means 20000
	MaxIter       int     // solver max_iter; 0 means 100000
	Dir           string  // output folder, used for the paths written into the solver
	Graph         graph.Options
}

// FinetuneKit is what Caffe needs to fine-tune a pretrained net on new
// classes.
type FinetuneKit struct {
	TrainVal *caffe.Net // data layers with placeholder sources, the new head, frozen layers, loss and accuracy
	Deploy   *caffe.Net // the deploy net with the new head; it carries the pretrained weights without the old head
	Solver   *caffepb.SolverParameter
	Reports  []*surgery.Report
}

// Finetune builds a fine-tuning kit from a pretrained deploy net with
// weights: the classifier is replaced (surgery.ReplaceHead), early layers
// are frozen when asked (surgery.Freeze), and the train_val net reads
// clearly marked placeholder databases. net is not modified.
func Finetune(net *caffe.Net, opts FinetuneOptions) (*FinetuneKit, error) {
	if opts.BatchSize == 0 {
		opts.BatchSize = 32
	}
	if opts.StepSize == 0 {
		opts.StepSize = 20000
	}
	if opts.MaxIter == 0 {
		opts.MaxIter = 100000
	}
	kit := &FinetuneKit{}
	deploy, rep, err := surgery.ReplaceHead(net, surgery.HeadOptions{Classes: opts.Classes, Layer: opts.Layer, Graph: opts.Graph})
	if err != nil {
		return nil, err
	}
	kit.Reports = append(kit.Reports, rep)
	if opts.FreezeThrough != "" {
		if deploy, rep, err = surgery.Freeze(deploy, opts.FreezeThrough, opts.Graph); err != nil {
			return nil, err
		}
		kit.Reports = append(kit.Reports, rep)
	}
	kit.Deploy = deploy

	// The new classifier is the one layer the original net does not have.
	old := map[string]bool{}
	for _, l := range net.Param.GetLayer() {
		old[l.GetName()] = true
	}
	head := ""
	for _, l := range deploy.Param.GetLayer() {
		if !old[l.GetName()] {
			head = l.GetName()
		}
	}
	tv, err := trainVal(deploy, head, opts)
	if err != nil {
		return nil, err
	}
	kit.TrainVal = tv

	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	kit.Solver, err = surgery.FinetuneSolver(surgery.SolverOptions{
		Net: dir + "/train_val.prototxt", HeadLR: opts.BaseLR,
		StepSize: opts.StepSize, MaxIter: opts.MaxIter, SnapshotPrefix: dir + "/snapshots/finetune",
	})
	if err != nil {
		return nil, err
	}
	// Caffe runs the TEST net only when test_iter and test_interval are
	// set: one pass over a validation batch every 1000 iterations.
	kit.Solver.TestIter = []int32{int32(max(1, 1000/opts.BatchSize))}
	kit.Solver.TestInterval = proto.Int32(1000)
	return kit, nil
}

// trainVal turns the deploy net into a training net: its Input layer
// becomes two Data layers (TRAIN and TEST) with placeholder sources, a
// final Softmax on the head becomes SoftmaxWithLoss, and an Accuracy
// layer is added for the TEST phase. Weights are not carried.
func trainVal(deploy *caffe.Net, head string, opts FinetuneOptions) (*caffe.Net, error) {
	g := graph.Build(deploy, opts.Graph)
	g.Infer()
	headLayer := g.LayerByName(head)
	if headLayer == nil {
		return nil, fmt.Errorf("transfer: finetune: the new classifier %q is not in the net", head)
	}
	scores := headLayer.Tops[0].Blob

	out := caffe.CloneNet(deploy)
	var layers []*caffepb.LayerParameter
	for _, l := range out.Param.GetLayer() {
		l.Blobs = nil
		switch {
		case l.GetType() == "Input":
			shape := l.GetInputParam().GetShape()
			if len(l.GetTop()) != 1 || len(shape) != 1 || len(shape[0].GetDim()) != 4 {
				return nil, fmt.Errorf("transfer: finetune: input layer %q is not one N×C×H×W image input", l.GetName())
			}
			dims := shape[0].GetDim()
			crop := uint32(dims[2])
			if dims[2] != dims[3] {
				return nil, fmt.Errorf("transfer: finetune: input %d×%d is not square; Caffe's crop_size is one number", dims[2], dims[3])
			}
			for _, phase := range []caffepb.Phase{caffepb.Phase_TRAIN, caffepb.Phase_TEST} {
				source, mirror := TrainSourcePlaceholder, true
				if phase == caffepb.Phase_TEST {
					source, mirror = ValSourcePlaceholder, false
				}
				layers = append(layers, &caffepb.LayerParameter{
					Name: proto.String(l.GetTop()[0]), Type: proto.String("Data"),
					Top:            []string{l.GetTop()[0], "label"},
					Include:        []*caffepb.NetStateRule{{Phase: phase.Enum()}},
					TransformParam: &caffepb.TransformationParameter{CropSize: proto.Uint32(crop), Mirror: proto.Bool(mirror)},
					DataParam: &caffepb.DataParameter{Source: proto.String(source), BatchSize: proto.Uint32(uint32(opts.BatchSize)),
						Backend: caffepb.DataParameter_LMDB.Enum()},
				})
			}
		case l.GetType() == "Softmax" && len(l.GetBottom()) == 1 && l.GetBottom()[0] == scores:
			// The loss replaces the deploy net's probabilities.
		default:
			layers = append(layers, l)
		}
	}
	layers = append(layers,
		&caffepb.LayerParameter{Name: proto.String("loss"), Type: proto.String("SoftmaxWithLoss"), Bottom: []string{scores, "label"}, Top: []string{"loss"}},
		&caffepb.LayerParameter{Name: proto.String("accuracy"), Type: proto.String("Accuracy"), Bottom: []string{scores, "label"}, Top: []string{"accuracy"},
			Include: []*caffepb.NetStateRule{{Phase: caffepb.Phase_TEST.Enum()}}},
	)
	out.Param.Layer = layers
	return out, nil
}
