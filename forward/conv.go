package forward

import (
	"fmt"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/tlsurgery/tlsurgery/graph"
)

// convKernel is a 2-D convolution or deconvolution as Caffe's
// base_conv_layer computes it.
type convKernel struct {
	inC, outC, group       int
	kh, kw, sh, sw, ph, pw int
	dh, dw                 int
	weights, bias          []float32
	transposed             bool
	workers                int
}

func buildConv(transposed bool) builder {
	return func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetConvolutionParam()
		in := l.Bottoms[0].Shape
		if len(in) != 4 || p.GetAxis() != 1 {
			return nil, fmt.Errorf("only 2-D convolution over N×C×H×W is supported, the bottom is %v", in)
		}
		w := l.Blobs[0].Shape
		k := &convKernel{inC: in[1], outC: int(p.GetNumOutput()), group: int(p.GetGroup()), transposed: transposed, workers: c.workers}
		k.kh, k.kw = w[2], w[3]
		pick := func(h, w *uint32, list []uint32, def int) (int, int) {
			switch {
			case h != nil || w != nil:
				return int(*h), int(*w)
			case len(list) == 1:
				return int(list[0]), int(list[0])
			case len(list) == 2:
				return int(list[0]), int(list[1])
			}
			return def, def
		}
		k.sh, k.sw = pick(p.StrideH, p.StrideW, p.GetStride(), 1)
		k.ph, k.pw = pick(p.PadH, p.PadW, p.GetPad(), 0)
		k.dh, k.dw = pick(nil, nil, p.GetDilation(), 1)
		var err error
		if k.weights, err = c.weights(l, 0); err != nil {
			return nil, err
		}
		if p.GetBiasTerm() {
			if k.bias, err = c.weights(l, 1); err != nil {
				return nil, err
			}
		}
		return k, nil
	}
}

func init() {
	registerKernel(buildConv(false), "Convolution", "DepthwiseConvolution", "ConvolutionDepthwise")
	registerKernel(buildConv(true), "Deconvolution")
}

func (k *convKernel) forward(bottoms, tops []*Tensor) error {
	for i := range bottoms {
		if k.transposed {
			k.deconv(bottoms[i], tops[i])
		} else {
			k.conv(bottoms[i], tops[i])
		}
	}
	return nil
}

// conv computes out = W ⊛ in per image and group: im2col turns each
// receptive window into a column, then one Sgemm multiplies the group's
// filters (outC/group × inC/group·kh·kw) by the columns.
func (k *convKernel) conv(in, out *Tensor) {
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	oh, ow := out.Shape[2], out.Shape[3]
	cg, og := k.inC/k.group, k.outC/k.group
	rows, cols := cg*k.kh*k.kw, oh*ow
	parallel(n, k.workers, func(img int) {
		col := make([]float32, rows*cols)
		for g := range k.group {
			src := in.Data[(img*k.inC+g*cg)*h*w : (img*k.inC+(g+1)*cg)*h*w]
			var colMat []float32
			if k.kh == 1 && k.kw == 1 && k.sh == 1 && k.sw == 1 && k.ph == 0 && k.pw == 0 {
				colMat = src // a 1×1 convolution reads the image as it is
			} else {
				im2col(src, cg, h, w, k.kh, k.kw, k.ph, k.pw, k.sh, k.sw, k.dh, k.dw, oh, ow, col)
				colMat = col
			}
			dst := out.Data[(img*k.outC+g*og)*cols : (img*k.outC+(g+1)*og)*cols]
			gemm(false, false, og, cols, rows, k.weights[g*og*rows:(g+1)*og*rows], colMat, dst)
			if k.bias != nil {
				for o := range og {
					b := k.bias[g*og+o]
					row := dst[o*cols : (o+1)*cols]
					for i := range row {
						row[i] += b
					}
				}
			}
		}
	})
}

// deconv is Caffe's deconvolution: the backward pass of a convolution
// whose input is the output here. Per image and group, Wᵀ (outC/group·kh·kw
// × inC/group) times the input gives columns that col2im adds into the
// output.
func (k *convKernel) deconv(in, out *Tensor) {
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	oh, ow := out.Shape[2], out.Shape[3]
	cg, og := k.inC/k.group, k.outC/k.group
	rows, cols := og*k.kh*k.kw, h*w
	parallel(n, k.workers, func(img int) {
		col := make([]float32, rows*cols)
		for g := range k.group {
			src := in.Data[(img*k.inC+g*cg)*cols : (img*k.inC+(g+1)*cg)*cols]
			gemm(true, false, rows, cols, cg, k.weights[g*cg*rows:(g+1)*cg*rows], src, col)
			dst := out.Data[(img*k.outC+g*og)*oh*ow : (img*k.outC+(g+1)*og)*oh*ow]
			col2im(col, og, oh, ow, k.kh, k.kw, k.ph, k.pw, k.sh, k.sw, k.dh, k.dw, h, w, dst)
			if k.bias != nil {
				for o := range og {
					b := k.bias[g*og+o]
					plane := dst[o*oh*ow : (o+1)*oh*ow]
					for i := range plane {
						plane[i] += b
					}
				}
			}
		}
	})
}

// im2col copies each kh×kw window (with dilation, zero padding) of the
// c×h×w image into a column of col, (c·kh·kw) × (oh·ow), as Caffe's
// im2col_cpu lays it out.
func im2col(img []float32, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow int, col []float32) {
	i := 0
	for ch := range c {
		plane := img[ch*h*w : (ch+1)*h*w]
		for ky := range kh {
			for kx := range kw {
				for y := range oh {
					iy := y*sh - ph + ky*dh
					if iy < 0 || iy >= h {
						clear(col[i : i+ow])
						i += ow
						continue
					}
					rowSrc := plane[iy*w : (iy+1)*w]
					ix := kx*dw - pw
					for range ow {
						if ix >= 0 && ix < w {
							col[i] = rowSrc[ix]
						} else {
							col[i] = 0
						}
						i++
						ix += sw
					}
				}
			}
		}
	}
}

// col2im adds the columns back into the c×h×w image (h, w the image, oh,
// ow the column grid), the inverse layout of im2col.
func col2im(col []float32, c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow int, img []float32) {
	i := 0
	for ch := range c {
		plane := img[ch*h*w : (ch+1)*h*w]
		for ky := range kh {
			for kx := range kw {
				for y := range oh {
					iy := y*sh - ph + ky*dh
					if iy < 0 || iy >= h {
						i += ow
						continue
					}
					row := plane[iy*w : (iy+1)*w]
					ix := kx*dw - pw
					for range ow {
						if ix >= 0 && ix < w {
							row[ix] += col[i]
						}
						i++
						ix += sw
					}
				}
			}
		}
	}
}

// gemm computes c = op(a) · op(b) with op(a) m×k, op(b) k×n, all
// row-major, through gonum's Sgemm, or through gemv when a is one row.
func gemm(transA, transB bool, m, n, k int, a, b, c []float32) {
	if m == 1 {
		gemv(transB, n, k, a, b, c)
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	lda, ldb := k, n
	if transA {
		ta, lda = blas.Trans, m
	}
	if transB {
		tb, ldb = blas.Trans, k
	}
	blas32.Gemm(ta, tb, 1,
		blas32.General{Rows: rowsOf(transA, m, k), Cols: colsOf(transA, m, k), Stride: lda, Data: a},
		blas32.General{Rows: rowsOf(transB, k, n), Cols: colsOf(transB, k, n), Stride: ldb, Data: b},
		0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}

// gemvMinWork is the number of multiply-adds that each goroutine of gemv
// gets at least. It is an estimate of where the work outweighs starting
// a goroutine, not a measured threshold.
const gemvMinWork = 1 << 16

// gemv computes the row c (1×n) = a (1×k) · op(b) as the matrix-vector
// product op(b)ᵀ · a, split into column ranges on GOMAXPROCS goroutines.
// An InnerProduct layer at batch 1 takes this path. There gonum's Sgemm
// splits the one output row into 64-column blocks and sums 64-element dot
// products per block. Sgemv instead runs one dot product over each whole
// row of b (transB, b is n×k), or one axpy per row of b (b is k×n).
func gemv(transB bool, n, k int, a, b, c []float32) {
	workers := min(runtime.GOMAXPROCS(0), max(1, n*k/gemvMinWork), n)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		part := func() {
			if transB {
				// Rows lo..hi of b (n×k) give outputs lo..hi.
				blas32.Gemv(blas.NoTrans, 1,
					blas32.General{Rows: hi - lo, Cols: k, Stride: k, Data: b[lo*k : hi*k]},
					blas32.Vector{N: k, Inc: 1, Data: a[:k]},
					0, blas32.Vector{N: hi - lo, Inc: 1, Data: c[lo:hi]})
				return
			}
			// Columns lo..hi of b (k×n) give outputs lo..hi.
			blas32.Gemv(blas.Trans, 1,
				blas32.General{Rows: k, Cols: hi - lo, Stride: n, Data: b[lo : (k-1)*n+hi]},
				blas32.Vector{N: k, Inc: 1, Data: a[:k]},
				0, blas32.Vector{N: hi - lo, Inc: 1, Data: c[lo:hi]})
		}
		if workers == 1 {
			part()
			return
		}
		wg.Go(part)
	}
	wg.Wait()
}

func rowsOf(trans bool, r, c int) int {
	if trans {
		return c
	}
	return r
}

func colsOf(trans bool, r, c int) int {
	if trans {
		return r
	}
	return c
}
