package transfer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/optimize"
)

// LinearOptions configures TrainLinear. The zero value trains a softmax
// (multinomial logistic) regression with L2 strength 1e-4 on 80% of the
// samples, validates on the rest, seed 1, at most 500 iterations.
type LinearOptions struct {
	L2      float64 // weight of ½‖W‖² in the loss (biases are not regularized); 0 means 1e-4, negative means none
	SVM     bool    // train a one-vs-rest linear SVM with the squared hinge loss instead
	Val     float64 // fraction of samples held out for validation, in [0, 1); 0 means 0.2, negative means none
	Seed    uint64  // seed of the shuffle that splits training and validation samples; 0 means 1
	MaxIter int     // L-BFGS iterations; 0 means 500

	// Progress, when set, is called after each L-BFGS iteration with the
	// iteration number and the training loss.
	Progress func(iter int, loss float64)
}

// Classifier is a linear classifier over D-dimensional codes: scores =
// W·x + b, W K×D in row-major order (the layout of a Caffe InnerProduct's
// weights).
type Classifier struct {
	Classes, Dim int
	Weights      []float32
	Bias         []float32
}

// Predict returns the class with the highest score for x.
func (c *Classifier) Predict(x []float32) int {
	best, arg := math.Inf(-1), 0
	for k := range c.Classes {
		s := float64(c.Bias[k])
		row := c.Weights[k*c.Dim : (k+1)*c.Dim]
		for j, v := range x {
			s += float64(row[j]) * float64(v)
		}
		if s > best {
			best, arg = s, k
		}
	}
	return arg
}

// Accuracy returns the fraction of rows of x (N×Dim) predicted as labels.
func (c *Classifier) Accuracy(x []float32, labels []int) float64 {
	if len(labels) == 0 {
		return 0
	}
	right := 0
	for i, y := range labels {
		if c.Predict(x[i*c.Dim:(i+1)*c.Dim]) == y {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

// LinearReport describes a training run.
type LinearReport struct {
	Model         string  `json:"model"`
	Train         int     `json:"train_samples"`
	Valid         int     `json:"val_samples"`
	TrainAccuracy float64 `json:"train_accuracy"`
	ValAccuracy   float64 `json:"val_accuracy"` // NaN when no samples are held out
	Iterations    int     `json:"iterations"`
	Loss          float64 `json:"loss"`
	L2            float64 `json:"l2"`
}

// Split returns the indices of training and validation samples after a
// shuffle seeded by seed, holding out the fraction val.
func Split(n int, val float64, seed uint64) (train, valid []int) {
	idx := rand.New(rand.NewPCG(seed, 0x6c696e)).Perm(n)
	nv := int(math.Round(val * float64(n)))
	return idx[nv:], idx[:nv]
}

// TrainLinear fits a linear classifier to codes (N×D, row-major) and
// integer labels in [0, K). Features are standardized with the training
// split's mean and deviation for the optimizer, and the standardization
// is folded into the returned weights, so the classifier applies to raw
// codes. Training is deterministic for a given seed.
func TrainLinear(codes []float32, d int, labels []int, opts LinearOptions) (*Classifier, *LinearReport, error) {
	if d <= 0 || len(codes) != d*len(labels) {
		return nil, nil, fmt.Errorf("transfer: %d values are not %d codes of %d dimensions", len(codes), len(labels), d)
	}
	k := 0
	for i, y := range labels {
		if y < 0 {
			return nil, nil, fmt.Errorf("transfer: label %d of sample %d is negative", y, i)
		}
		k = max(k, y+1)
	}
	if k < 2 {
		return nil, nil, fmt.Errorf("transfer: the labels name %d class; a classifier needs at least 2", k)
	}
	if opts.L2 == 0 {
		opts.L2 = 1e-4
	}
	opts.L2 = max(opts.L2, 0)
	if opts.Val == 0 {
		opts.Val = 0.2
	}
	opts.Val = max(opts.Val, 0)
	if opts.Val >= 1 {
		return nil, nil, fmt.Errorf("transfer: validation fraction %g leaves no training samples", opts.Val)
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.MaxIter == 0 {
		opts.MaxIter = 500
	}

	trainIdx, valIdx := Split(len(labels), opts.Val, opts.Seed)
	mean, std := standardization(codes, d, trainIdx)
	z := make([]float64, len(trainIdx)*d)
	y := make([]int, len(trainIdx))
	for r, i := range trainIdx {
		for j := range d {
			z[r*d+j] = (float64(codes[i*d+j]) - mean[j]) / std[j]
		}
		y[r] = labels[i]
	}

	obj := &objective{z: z, y: y, n: len(y), d: d, k: k, l2: opts.L2, svm: opts.SVM}
	problem := optimize.Problem{Func: obj.loss, Grad: obj.grad}
	iter := 0
	settings := &optimize.Settings{
		MajorIterations: opts.MaxIter,
		Recorder:        progressRecorder{fn: opts.Progress, iter: &iter},
		Converger:       &optimize.FunctionConverge{Absolute: 1e-10, Relative: 1e-9, Iterations: 20},
	}
	res, err := optimize.Minimize(problem, make([]float64, k*(d+1)), settings, &optimize.LBFGS{})
	if err != nil && res == nil {
		return nil, nil, fmt.Errorf("transfer: training failed: %w", err)
	}

	// Fold the standardization into W and b: w·(x − μ)/σ + b.
	c := &Classifier{Classes: k, Dim: d, Weights: make([]float32, k*d), Bias: make([]float32, k)}
	for cl := range k {
		b := res.X[k*d+cl]
		for j := range d {
			w := res.X[cl*d+j] / std[j]
			c.Weights[cl*d+j] = float32(w)
			b -= w * mean[j]
		}
		c.Bias[cl] = float32(b)
	}

	model := "softmax regression"
	if opts.SVM {
		model = "linear SVM (one-vs-rest, squared hinge)"
	}
	rep := &LinearReport{Model: model, Train: len(trainIdx), Valid: len(valIdx), Iterations: res.Stats.MajorIterations, Loss: res.F, L2: opts.L2}
	rep.TrainAccuracy = c.Accuracy(gather(codes, d, trainIdx), pick(labels, trainIdx))
	rep.ValAccuracy = math.NaN()
	if len(valIdx) > 0 {
		rep.ValAccuracy = c.Accuracy(gather(codes, d, valIdx), pick(labels, valIdx))
	}
	return c, rep, nil
}

func gather(codes []float32, d int, idx []int) []float32 {
	out := make([]float32, 0, len(idx)*d)
	for _, i := range idx {
		out = append(out, codes[i*d:(i+1)*d]...)
	}
	return out
}

func pick(labels, idx []int) []int {
	out := make([]int, len(idx))
	for r, i := range idx {
		out[r] = labels[i]
	}
	return out
}

// standardization returns each feature's mean and standard deviation
// over the rows idx; a constant feature gets deviation 1.
func standardization(codes []float32, d int, idx []int) ([]float64, []float64) {
	mean, std := make([]float64, d), make([]float64, d)
	for _, i := range idx {
		for j := range d {
			mean[j] += float64(codes[i*d+j])
		}
	}
	n := float64(max(len(idx), 1))
	for j := range mean {
		mean[j] /= n
	}
	for _, i := range idx {
		for j := range d {
			v := float64(codes[i*d+j]) - mean[j]
			std[j] += v * v
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / n)
		if std[j] < 1e-12 {
			std[j] = 1
		}
	}
	return mean, std
}

// objective is the regularized mean loss over standardized codes. The
// parameters are W (k×d, row-major) then b (k).
type objective struct {
	z       []float64
	y       []int
	n, d, k int
	l2      float64
	svm     bool
}

func (o *objective) loss(x []float64) float64 {
	g := make([]float64, len(x))
	return o.eval(x, g, false)
}

func (o *objective) grad(g, x []float64) {
	clear(g)
	o.eval(x, g, true)
}

// eval returns the loss and, when withGrad, adds its gradient into g.
func (o *objective) eval(x, g []float64, withGrad bool) float64 {
	w, b := x[:o.k*o.d], x[o.k*o.d:]
	scores := make([]float64, o.k)
	var total float64
	for i := range o.n {
		zi := o.z[i*o.d : (i+1)*o.d]
		for c := range o.k {
			s := b[c]
			row := w[c*o.d : (c+1)*o.d]
			for j, v := range zi {
				s += row[j] * v
			}
			scores[c] = s
		}
		if o.svm {
			// Squared hinge per class: max(0, 1 − t·s)², t = +1 for the
			// sample's class and −1 for the others.
			for c := range o.k {
				t := -1.0
				if c == o.y[i] {
					t = 1
				}
				m := 1 - t*scores[c]
				if m <= 0 {
					scores[c] = 0
					continue
				}
				total += m * m
				scores[c] = -2 * t * m // d loss / d score
			}
		} else {
			mx := scores[0]
			for _, s := range scores {
				mx = max(mx, s)
			}
			var sum float64
			for c := range scores {
				scores[c] = math.Exp(scores[c] - mx)
				sum += scores[c]
			}
			total -= math.Log(scores[o.y[i]] / sum)
			for c := range scores {
				scores[c] /= sum // probability
			}
			scores[o.y[i]]--
		}
		if withGrad {
			for c := range o.k {
				dc := scores[c] / float64(o.n)
				if dc == 0 {
					continue
				}
				row := g[c*o.d : (c+1)*o.d]
				for j, v := range zi {
					row[j] += dc * v
				}
				g[o.k*o.d+c] += dc
			}
		}
	}
	loss := total / float64(o.n)
	for j, v := range w {
		loss += 0.5 * o.l2 * v * v
		if withGrad {
			g[j] += o.l2 * v
		}
	}
	return loss
}

// progressRecorder reports each major iteration to a callback.
type progressRecorder struct {
	fn   func(int, float64)
	iter *int
}

func (p progressRecorder) Init() error { return nil }

func (p progressRecorder) Record(loc *optimize.Location, op optimize.Operation, _ *optimize.Stats) error {
	if op == optimize.MajorIteration {
		*p.iter++
		if p.fn != nil {
			p.fn(*p.iter, loc.F)
		}
	}
	return nil
}
