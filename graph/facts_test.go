package graph

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// readNet reads a corpus net by its path under corpus/; DeepLab's shell
// templates get 21 classes for ${NUM_LABELS}.
func readNet(t *testing.T, rel string) *caffe.Net {
	t.Helper()
	path := corpus.Path(t, strings.Split(rel, "/")...)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.ReplaceAll(src, []byte("${NUM_LABELS}"), []byte("21"))
	net, err := caffe.ReadOptions{Name: path, StructureOnly: true}.Read(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// publishedFacts are the model-zoo figures each net must reproduce:
// parameter counts (learnable, and stored values with BatchNorm
// statistics), multiply-adds per forward pass at the net's declared batch
// size, and blob shapes.
var publishedFacts = []struct {
	net       string
	inputs    map[string][]int
	learnable int64 // 0: not checked
	stored    int64
	macs      int64 // per image; 0: not checked
	macsTol   float64
	shapes    map[string][]int // final blob values
}{
	{net: "prototxt/bvlc/bvlc_alexnet_deploy.prototxt", learnable: 60965224, macs: 724406816, macsTol: 0.001,
		shapes: map[string][]int{"pool5": {10, 256, 6, 6}, "fc7": {10, 4096}}},
	{net: "prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", learnable: 60965224, inputs: map[string][]int{"": {1, 3, 224, 224}}, macs: 720600000, macsTol: 0.001,
		shapes: map[string][]int{"conv1": {1, 96, 54, 54}}},
	{net: "prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", inputs: map[string][]int{"": {50, 3, 227, 227}},
		shapes: map[string][]int{"conv1": {50, 96, 55, 55}, "pool1": {50, 96, 27, 27}, "conv2": {50, 256, 27, 27}, "pool2": {50, 256, 13, 13}, "conv5": {50, 256, 13, 13}, "pool5": {50, 256, 6, 6}, "fc6": {50, 4096}, "fc8": {50, 1000}}},
	{net: "prototxt/bvlc/net_surgery_bvlc_caffenet_full_conv.prototxt", learnable: 60965224,
		shapes: map[string][]int{"fc6-conv": {1, 4096, 8, 8}, "prob": {1, 1000, 8, 8}}},
	{net: "prototxt/bvlc/bvlc_reference_rcnn_ilsvrc13_deploy.prototxt", learnable: 57687624},
	{net: "prototxt/bvlc/finetune_flickr_style_deploy.prototxt", learnable: 56950164},
	{net: "prototxt/vgg/VGG_ILSVRC_16_layers_deploy_upgraded_V2.prototxt", learnable: 138357544, macs: 15470264320, macsTol: 0.0001,
		shapes: map[string][]int{"pool5": {1, 512, 7, 7}}},
	{net: "prototxt/vgg/VGG_ILSVRC_16_layers_deploy_V1_netscope.prototxt", learnable: 138357544},
	{net: "prototxt/vgg/VGG_ILSVRC_19_layers_deploy_upgraded_V2.prototxt", learnable: 143667240, macs: 19630000000, macsTol: 0.001},
	{net: "prototxt/bvlc/bvlc_googlenet_deploy.prototxt", learnable: 6998552, macs: 1583000000, macsTol: 0.001,
		shapes: map[string][]int{"pool1/3x3_s2": {10, 64, 56, 56}, "inception_3a/output": {10, 256, 28, 28}, "inception_4e/output": {10, 832, 14, 14}, "inception_5b/output": {10, 1024, 7, 7}, "pool5/7x7_s1": {10, 1024, 1, 1}}},
	{net: "prototxt/resnet/ResNet-50-deploy.prototxt", learnable: 25557096, stored: 25610269, macs: 3858000000, macsTol: 0.001,
		shapes: map[string][]int{"res5c": {1, 2048, 7, 7}, "pool5": {1, 2048, 1, 1}}},
	{net: "prototxt/resnet/ResNet-101-deploy.prototxt", learnable: 44549160, stored: 44654608, macs: 7570000000, macsTol: 0.001},
	{net: "prototxt/resnet/ResNet-152-deploy.prototxt", learnable: 60192808, stored: 60344387, macs: 11282000000, macsTol: 0.001},
	{net: "prototxt/resnet/soeaver_deploy_resnext50-32x4d.prototxt", learnable: 25028904},
	{net: "prototxt/squeezenet/SqueezeNet_v1.0_deploy.prototxt", learnable: 1248424, inputs: map[string][]int{"": {1, 3, 227, 227}},
		shapes: map[string][]int{"conv1": {1, 96, 111, 111}, "fire9/concat": {1, 512, 13, 13}, "conv10": {1, 1000, 15, 15}, "pool10": {1, 1000, 1, 1}}},
	{net: "prototxt/squeezenet/SqueezeNet_v1.0_deploy.prototxt", inputs: map[string][]int{"": {1, 3, 224, 224}}, macs: 847600000, macsTol: 0.001},
	{net: "prototxt/squeezenet/SqueezeNet_v1.1_deploy.prototxt", learnable: 1235496, inputs: map[string][]int{"": {1, 3, 227, 227}},
		shapes: map[string][]int{"conv1": {1, 64, 113, 113}, "conv10": {1, 1000, 14, 14}}},
	{net: "prototxt/squeezenet/SqueezeNet_v1.1_deploy.prototxt", inputs: map[string][]int{"": {1, 3, 224, 224}}, macs: 349200000, macsTol: 0.001},
	{net: "prototxt/mobilenet/mobilenet_v1_deploy.prototxt", learnable: 4231976, macs: 568700000, macsTol: 0.001},
	{net: "prototxt/mobilenet/mobilenet_v2_deploy.prototxt", learnable: 3505960, macs: 429100000, macsTol: 0.001},
	{net: "prototxt/agegender/age_net_deploy.prototxt", learnable: 11415048, shapes: map[string][]int{"pool5": {1, 384, 7, 7}}},
	{net: "prototxt/agegender/gender_net_deploy.prototxt", learnable: 11411970},
	{net: "caffemodel/lenet/lenet.prototxt", learnable: 431080, shapes: map[string][]int{"pool2": {64, 50, 4, 4}}},
	{net: "prototxt/bvlc/cifar10_quick.prototxt", learnable: 145578, macs: 12350000, macsTol: 0.001, shapes: map[string][]int{"pool3": {1, 64, 4, 4}}},
	{net: "prototxt/bvlc/cifar10_full.prototxt", learnable: 89578, macs: 12300000, macsTol: 0.001},
	{net: "prototxt/fcn/voc-fcn8s_deploy.prototxt", learnable: 134489759, inputs: map[string][]int{"": {1, 3, 500, 500}},
		shapes: map[string][]int{"conv1_1": {1, 64, 698, 698}, "pool5": {1, 512, 22, 22}, "fc6": {1, 4096, 16, 16}, "upscore8": {1, 21, 568, 568}, "score": {1, 21, 500, 500}}},
	{net: "prototxt/ssd/VGG_VOC0712_SSD_300x300_deploy.prototxt", learnable: 26285486, macs: 31370000000, macsTol: 0.001},
	{net: "prototxt/mobilenet_ssd/MobileNetSSD_deploy_merged_bn.prototxt", learnable: 5783417, macs: 1148000000, macsTol: 0.001},
	{net: "prototxt/pspnet/pspnet50_ADE20K_473.prototxt", learnable: 46782550, stored: 46841174,
		shapes: map[string][]int{"conv5_3": {1, 2048, 60, 60}, "conv6": {1, 150, 60, 60}, "conv6_interp": {1, 150, 473, 473}}},
	{net: "prototxt/pspnet/pspnet101_VOC2012_473.prototxt", learnable: 65708501},
	{net: "prototxt/deeplab/deeplab_v2_vgg16_aspp_test.prototxt", learnable: 37877652, inputs: map[string][]int{"data": {1, 3, 513, 513}}, macs: 201960000000, macsTol: 0.001},
	{net: "prototxt/segnet/segnet_inference.prototxt", learnable: 29449355, inputs: map[string][]int{"data": {1, 3, 360, 480}, "label": {1, 1, 360, 480}},
		shapes: map[string][]int{"pool5": {1, 512, 12, 15}, "prob": {1, 11, 360, 480}}},
	{net: "prototxt/enet/enet_deploy_final.prototxt", learnable: 367687},
}

func TestPublishedFacts(t *testing.T) {
	for _, f := range publishedFacts {
		name := strings.TrimSuffix(filepath.Base(f.net), ".prototxt")
		if f.inputs != nil {
			name += fmt.Sprintf("@%v", f.inputs)
		}
		t.Run(name, func(t *testing.T) {
			net := readNet(t, f.net)
			s, g := Summarize(net, Options{Inputs: f.inputs})
			for _, u := range s.Unknown {
				t.Logf("unknown: %s", u)
			}
			if err := g.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if f.learnable != 0 && s.Learnable != f.learnable {
				t.Errorf("learnable %d, want %d", s.Learnable, f.learnable)
			}
			if f.stored != 0 && s.Stored != f.stored {
				t.Errorf("stored %d, want %d", s.Stored, f.stored)
			}
			if f.macs != 0 {
				batch := int64(1)
				for _, v := range g.Values {
					if v.Producer == nil || isInputType(v.Producer.Type()) {
						if len(v.Shape) > 0 {
							batch = int64(v.Shape[0])
						}
						break
					}
				}
				per := float64(s.MACs) / float64(batch)
				if d := per/float64(f.macs) - 1; d > f.macsTol || d < -f.macsTol {
					t.Errorf("MACs per image %.0f, want %d within %.2g", per, f.macs, f.macsTol)
				}
			}
			for blob, want := range f.shapes {
				v := g.Final[blob]
				if v == nil {
					t.Errorf("no blob %q", blob)
					continue
				}
				if !slices.Equal(v.Shape, want) {
					t.Errorf("blob %q shape %v, want %v", blob, v.Shape, want)
				}
			}
		})
	}
}

// TestCorpusTotalsGolden pins, for every corpus net, the layer count,
// parameter totals, multiply-adds and the layers whose shapes stay
// unknown, so any change in a rule shows up as a diff.
func TestCorpusTotalsGolden(t *testing.T) {
	var b strings.Builder
	fmt.Fprintln(&b, "# net\tlayers\tlearnable\tunique\tstatistics\tmacs\tother_ops\tunknown_layers\tproblems")
	root := corpus.Path(t)
	for _, path := range corpus.Walk(t, ".prototxt") {
		rel, _ := filepath.Rel(root, path)
		net := readNet(t, filepath.ToSlash(rel))
		s, g := Summarize(net, Options{})
		problems := 0
		if err := g.Validate(); err != nil {
			problems = strings.Count(err.Error(), "\n") + 1
		}
		fmt.Fprintf(&b, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", rel, len(s.Layers), s.Learnable, s.Unique, s.Statistics, s.MACs, s.OtherOps, len(s.Unknown), problems)
	}
	golden := filepath.Join("testdata", "corpus_totals.tsv")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./graph/ -run TestCorpusTotalsGolden -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("line %d:\n got  %s\n want %s", i+1, g, w)
			}
		}
	}
}
