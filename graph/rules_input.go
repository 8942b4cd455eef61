package graph

import (
	"fmt"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Data layers state their top shapes in their parameters where they can;
// a layer that reads a database (Data, HDF5Data, AnnotatedData) states no
// size, so its tops are unknown unless Options.Inputs gives them.
func init() {
	register(&Rule{
		// Caffe's input_layer.cpp: one shape for all tops, or one per top.
		Types:      []string{"Input"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			shapes := c.Layer.GetInputParam().GetShape()
			n := len(c.Layer.GetTop())
			if len(shapes) != 1 && len(shapes) != n {
				return nil, fmt.Errorf("input_param has %d shapes for %d tops; give one, or one per top", len(shapes), n)
			}
			out := make([][]int, n)
			for i := range out {
				s := shapes[0]
				if len(shapes) == n {
					s = shapes[i]
				}
				dims, err := blobShapeDims(s)
				if err != nil {
					return nil, err
				}
				out[i] = dims
			}
			return out, nil
		},
	})
	register(&Rule{
		// Caffe's memory_data_layer.cpp: data N×C×H×W, labels N.
		Types:      []string{"MemoryData"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			p := c.Layer.GetMemoryDataParam()
			data := []int{int(p.GetBatchSize()), int(p.GetChannels()), int(p.GetHeight()), int(p.GetWidth())}
			return dataTops(c, data, []int{int(p.GetBatchSize())}), nil
		},
	})
	register(&Rule{
		// Caffe's dummy_data_layer.cpp: shape per top (or one for all), or
		// the legacy num/channels/height/width lists.
		Types:      []string{"DummyData"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			p := c.Layer.GetDummyDataParam()
			n := len(c.Layer.GetTop())
			out := make([][]int, n)
			for i := range out {
				switch {
				case len(p.GetShape()) > 0:
					s := p.GetShape()[min(i, len(p.GetShape())-1)]
					dims, err := blobShapeDims(s)
					if err != nil {
						return nil, err
					}
					out[i] = dims
				case len(p.GetNum()) > 0:
					pick := func(v []uint32) int { return int(v[min(i, len(v)-1)]) }
					if len(p.GetChannels()) == 0 || len(p.GetHeight()) == 0 || len(p.GetWidth()) == 0 {
						return nil, fmt.Errorf("dummy_data_param gives num without channels, height and width")
					}
					out[i] = []int{pick(p.GetNum()), pick(p.GetChannels()), pick(p.GetHeight()), pick(p.GetWidth())}
				default:
					return nil, fmt.Errorf("dummy_data_param gives no shape")
				}
			}
			return out, nil
		},
	})
	register(&Rule{
		// Caffe's image_data_layer.cpp: images resized to new_height ×
		// new_width, then cropped to crop_size; 3 channels unless
		// is_color is false.
		Types:      []string{"ImageData"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			p := c.Layer.GetImageDataParam()
			ch := 3
			if !p.GetIsColor() {
				ch = 1
			}
			h, w := int(p.GetNewHeight()), int(p.GetNewWidth())
			if crop := int(c.Layer.GetTransformParam().GetCropSize()); crop > 0 {
				h, w = crop, crop
			}
			if h == 0 || w == 0 {
				return dataTops(c, nil, nil), nil
			}
			n := int(p.GetBatchSize())
			return dataTops(c, []int{n, ch, h, w}, []int{n}), nil
		},
	})
	register(&Rule{
		// Caffe's window_data_layer.cpp: 3-channel windows warped to
		// crop_size.
		Types:      []string{"WindowData"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			crop := int(c.Layer.GetTransformParam().GetCropSize())
			if crop == 0 {
				crop = int(c.Layer.GetWindowDataParam().GetCropSize())
			}
			n := int(c.Layer.GetWindowDataParam().GetBatchSize())
			if crop == 0 {
				return dataTops(c, nil, nil), nil
			}
			return dataTops(c, []int{n, 3, crop, crop}, []int{n}), nil
		},
	})
	register(&Rule{
		// Database readers: the size is in the records, not the net.
		Types:      []string{"Data", "HDF5Data", "AnnotatedData", "VideoData", "DenseImageData"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			return make([][]int, len(c.Layer.GetTop())), nil
		},
	})
}

// dataTops returns data for the first top and label for a second one.
func dataTops(c *Context, data, label []int) [][]int {
	out := make([][]int, len(c.Layer.GetTop()))
	if len(out) > 0 {
		out[0] = data
	}
	if len(out) > 1 {
		out[1] = label
	}
	return out
}

// blobShapeDims converts a BlobShape, rejecting negative dimensions.
func blobShapeDims(s *caffepb.BlobShape) ([]int, error) {
	out := make([]int, len(s.GetDim()))
	for i, d := range s.GetDim() {
		if d < 0 || d > 1<<31 {
			return nil, fmt.Errorf("invalid dimension %d in shape %v", d, s.GetDim())
		}
		out[i] = int(d)
	}
	return out, nil
}
