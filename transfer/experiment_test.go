package transfer

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// lenet reads BVLC's LeNet with its real MNIST weights.
func lenet(t *testing.T) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadFile(corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := caffe.ReadFile(corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel"))
	if err != nil {
		t.Fatal(err)
	}
	net, _, err = caffe.AttachWeights(net, w)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// codes runs net on the images and returns the final values of the blobs.
func codes(t *testing.T, net *caffe.Net, im *Images, blobs ...string) map[string][]float32 {
	t.Helper()
	fn, err := forward.Compile(net, forward.Options{Graph: graph.Options{Inputs: map[string][]int{"": {im.N, 1, im.H, im.W}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := fn.Run(map[string]*forward.Tensor{"data": {Shape: []int{im.N, 1, im.H, im.W}, Data: im.Data}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, b := range blobs {
		out[b] = res.Blob(b).Data
	}
	return out
}

// subset returns rows idx of an N×d matrix and their labels.
func subset(x []float32, d int, labels []int, idx []int) ([]float32, []int) {
	return gather(x, d, idx), pick(labels, idx)
}

// accuracyOn trains on the rows train and returns the accuracy on test.
func accuracyOn(t *testing.T, x []float32, d int, labels []int, train, test []int) float64 {
	t.Helper()
	xtr, ytr := subset(x, d, labels, train)
	c, _, err := TrainLinear(xtr, d, ytr, LinearOptions{Val: -1, L2: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	xte, yte := subset(x, d, labels, test)
	return c.Accuracy(xte, yte)
}

// TestDigitsSmallSimilar: 1,797 8×8 digits laid out like MNIST; 300
// train a linear classifier on the codes advise picks for similar data,
// which must beat both raw pixels and LeNet's own predictions.
func TestDigitsSmallSimilar(t *testing.T) {
	im, err := ReadDigitsCSV(filepath.Join(corpus.Shared(t), "datasets", "digits", "digits.csv.gz"), 1.0/256)
	if err != nil {
		t.Fatal(err)
	}
	if im.N != 1797 {
		t.Fatalf("read %d digits, want 1797", im.N)
	}
	net := lenet(t)
	advice, err := Advise(net, AdviseOptions{Samples: 300, Classes: 10, Similar: true})
	if err != nil {
		t.Fatal(err)
	}
	out := codes(t, net, im, advice.Features, "ip2")
	perm := rand.New(rand.NewPCG(1, 2)).Perm(im.N)
	train, test := perm[:300], perm[300:]

	d := len(out[advice.Features]) / im.N
	codeAcc := accuracyOn(t, out[advice.Features], d, im.Labels, train, test)
	pixelAcc := accuracyOn(t, im.Data, 28*28, im.Labels, train, test)
	var right int
	for _, i := range test {
		scores := out["ip2"][i*10 : (i+1)*10]
		best := 0
		for k := range scores {
			if scores[k] > scores[best] {
				best = k
			}
		}
		if best == im.Labels[i] {
			right++
		}
	}
	lenetAcc := float64(right) / float64(len(test))
	t.Logf("test accuracy: linear on %s codes %.4f, linear on pixels %.4f, LeNet's own %.4f", advice.Features, codeAcc, pixelAcc, lenetAcc)
	if codeAcc < 0.97 {
		t.Errorf("codes give %.4f, want ≥ 0.97", codeAcc)
	}
	if codeAcc <= pixelAcc || codeAcc <= lenetAcc {
		t.Errorf("codes (%.4f) do not beat pixels (%.4f) and LeNet (%.4f)", codeAcc, pixelAcc, lenetAcc)
	}
}

// TestFashionSmallDifferent: Fashion-MNIST is unlike MNIST; codes from
// the earlier layer advise picks for different data must stay within a
// point of the top hidden layer's and beat the class scores by 10.
func TestFashionSmallDifferent(t *testing.T) {
	dir := filepath.Join(corpus.Shared(t), "datasets", "fashion-mnist")
	tr, err := ReadIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 1000, 1.0/256)
	if err != nil {
		t.Fatal(err)
	}
	te, err := ReadIDX(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), 2000, 1.0/256)
	if err != nil {
		t.Fatal(err)
	}
	net := lenet(t)
	advice, err := Advise(net, AdviseOptions{Samples: tr.N, Classes: 10, Similar: false})
	if err != nil {
		t.Fatal(err)
	}
	all := &Images{N: tr.N + te.N, H: 28, W: 28, Data: append(append([]float32{}, tr.Data...), te.Data...), Labels: append(append([]int{}, tr.Labels...), te.Labels...)}
	out := codes(t, net, all, advice.Features, "ip1", "ip2")
	train := make([]int, tr.N)
	test := make([]int, te.N)
	for i := range train {
		train[i] = i
	}
	for i := range test {
		test[i] = tr.N + i
	}
	acc := map[string]float64{}
	for blob, x := range out {
		acc[blob] = accuracyOn(t, x, len(x)/all.N, all.Labels, train, test)
	}
	t.Logf("test accuracy: %s %.4f, ip1 %.4f, ip2 %.4f", advice.Features, acc[advice.Features], acc["ip1"], acc["ip2"])
	if acc[advice.Features] < acc["ip1"]-0.01 {
		t.Errorf("%s codes (%.4f) are more than 1 point below ip1's (%.4f)", advice.Features, acc[advice.Features], acc["ip1"])
	}
	if acc[advice.Features] < acc["ip2"]+0.10 {
		t.Errorf("%s codes (%.4f) are not 10 points above ip2's (%.4f)", advice.Features, acc[advice.Features], acc["ip2"])
	}
}
