package onnx

import (
	"github.com/tlsurgery/tlsurgery/graph"
)

func init() {
	register(mapInnerProduct, "InnerProduct")
}

// mapInnerProduct maps Caffe's inner_product_layer.cpp: the axes from
// inner_product_param.axis on (default 1) flatten into K values, and the
// top is the leading axes followed by num_output. Caffe stores the
// weights N × K (K × N with transpose: true).
//
// With axis 1 and the N × K layout, the export is Flatten(axis 1) and Gemm
// with transB=1, which keeps Caffe's layout (OpenCV 4.6's ONNX importer
// rejects Gemm with transB=0). Otherwise the bottom is reshaped to its
// leading axes and K, multiplied by the K × N weights with MatMul, and the
// bias is added with Add.
func mapInnerProduct(c *converter, l *graph.Layer) error {
	p := l.Param.GetInnerProductParam()
	in := l.Bottoms[0].Shape
	axis, err := canonicalAxis(int(p.GetAxis()), len(in))
	if err != nil {
		return unsupported(l, "inner_product_param.axis: %v", err)
	}
	n := int(p.GetNumOutput())
	k := 1
	for _, d := range in[axis:] {
		k *= d
	}
	bias := ""
	if p.GetBiasTerm() {
		if bias, err = c.weightConst(1, "bias", []int{n}); err != nil {
			return err
		}
	}

	if axis == 1 && !p.GetTranspose() {
		weight, err := c.weightConst(0, "weight", []int{n, k})
		if err != nil {
			return err
		}
		x := c.in(0)
		if len(in) != 2 {
			x = c.temp("flat")
			c.unary("Flatten", c.in(0), x, attrInt("axis", 1))
		}
		inputs := []string{x, weight}
		if bias != "" {
			inputs = append(inputs, bias)
		}
		c.node("Gemm", inputs, []string{c.top(0)}, attrInt("transB", 1))
		return nil
	}

	// MatMul needs the weights K × N: Caffe's transpose: true layout, or
	// the N × K blob transposed here.
	values, err := c.weights(0, []int{n, k})
	if err != nil {
		return err
	}
	kn := values
	if !p.GetTranspose() {
		kn = make([]float32, len(values))
		for i := range n {
			for j := range k {
				kn[j*n+i] = values[i*k+j]
			}
		}
	}
	weight := c.floatConst("weight", []int{k, n}, kn)

	flat := c.temp("flat")
	target := append(append([]int(nil), in[:axis]...), k)
	batchAxes := c.batchAxes(l.Bottoms[0])
	if axis > 0 && batchAxes[0] {
		target[0] = 0
	} else if len(batchAxes) > 0 && batchAxes[0] {
		return unsupported(l, "inner_product_param.axis 0 flattens the batch axis, which a dynamic batch size cannot do; export with a fixed batch size")
	}
	c.reshape(c.in(0), flat, target)
	if bias == "" {
		c.node("MatMul", []string{flat, weight}, []string{c.top(0)})
		return nil
	}
	product := c.temp("matmul")
	c.node("MatMul", []string{flat, weight}, []string{product})
	c.node("Add", []string{product, bias}, []string{c.top(0)})
	return nil
}
