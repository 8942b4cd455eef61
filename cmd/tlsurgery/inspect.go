package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

func newInspectCommand(stdout io.Writer) *cobra.Command {
	var format string
	var sel selection
	cmd := &cobra.Command{
		Use:   "inspect NET [WEIGHTS]",
		Short: "List the layers of a net with shapes, parameters and multiply-adds",
		Long: `inspect prints one row per layer: name, type, bottoms and tops, the shape of
each top, the shapes of the blobs it stores, learnable parameters,
multiply-adds, activation memory, and the receptive field and cumulative
stride of its output; then the totals and the reader's notes (format
upgrades, unknown fields kept, layers whose shapes are unknown).

NET is a .prototxt or a .caffemodel (a caffemodel carries its net, so it
is enough alone). WEIGHTS, when given, is a caffemodel whose blobs are
matched to NET's layers by name. Weight values are not decoded.

Multiply-adds count one fused multiply-add as one operation and include
Convolution, Deconvolution and InnerProduct only, as published model
figures do; the arithmetic of other layers is totalled separately.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := sel.options()
			if err != nil {
				return err
			}
			net, notes, err := loadStructure(args)
			if err != nil {
				return err
			}
			summary, _ := graph.Summarize(net, opts)
			switch format {
			case "table", "markdown":
				return printSummaryTable(stdout, summary, notes, format == "markdown")
			case "json":
				return printSummaryJSON(stdout, summary, notes)
			case "csv":
				return printSummaryCSV(stdout, summary)
			}
			return fmt.Errorf("unknown --format %q; use table, json, markdown or csv", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json, markdown or csv")
	sel.register(cmd)
	return cmd
}

// selection holds the flags that choose a net's phase and input sizes.
type selection struct {
	inputs []string
	shapes []string
	train  bool
	stages []string
	level  int32
}

func (s *selection) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&s.inputs, "input", nil, "input size N,C,H,W of the net's first input, or NAME=N,C,H,W for a named one (repeatable)")
	f.StringArrayVar(&s.shapes, "shape", nil, "shape BLOB=D1,D2,... of any blob, e.g. the top of a layer without a shape rule (repeatable)")
	f.BoolVar(&s.train, "train", false, "select the TRAIN phase's layers instead of TEST's")
	f.StringSliceVar(&s.stages, "stage", nil, "stages of the net state, for include/exclude rules")
	f.Int32Var(&s.level, "level", 0, "level of the net state, for include/exclude rules")
}

func (s *selection) options() (graph.Options, error) {
	opts := graph.Options{Train: s.train, Stages: s.stages, Level: s.level, Inputs: map[string][]int{}}
	parse := func(flag, v string, nameRequired bool) error {
		name, dims, found := strings.Cut(v, "=")
		if !found {
			if nameRequired {
				return fmt.Errorf("--%s %q: use BLOB=D1,D2,...", flag, v)
			}
			name, dims = "", v
		}
		shape, err := parseDims(dims)
		if err != nil {
			return fmt.Errorf("--%s %q: %v", flag, v, err)
		}
		opts.Inputs[name] = shape
		return nil
	}
	for _, v := range s.inputs {
		if err := parse("input", v, false); err != nil {
			return opts, err
		}
	}
	for _, v := range s.shapes {
		if err := parse("shape", v, true); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// parseDims parses "1,3,224,224" (x and × are accepted as separators).
func parseDims(s string) ([]int, error) {
	s = strings.NewReplacer("×", ",", "x", ",").Replace(s)
	var out []int
	for _, part := range strings.Split(s, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || d < 1 {
			return nil, fmt.Errorf("dimension %q is not a positive integer", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// loadStructure reads NET and, when given, the shapes of WEIGHTS' blobs,
// and returns the net with the notes of both reads and of the matching.
func loadStructure(args []string) (*caffe.Net, []caffe.Note, error) {
	opts := caffe.ReadOptions{StructureOnly: true}
	net, err := opts.ReadFile(args[0])
	if err != nil {
		return nil, nil, err
	}
	notes := net.Notes
	if len(args) == 1 {
		return net, notes, nil
	}
	weights, err := opts.ReadFile(args[1])
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, weights.Notes...)
	matched, more, err := caffe.AttachWeights(net, weights)
	if err != nil {
		return nil, nil, err
	}
	return matched, append(notes, more...), nil
}

func formatShape(s []int) string {
	if s == nil {
		return "?"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "×")
}

func formatShapes(list [][]int) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = formatShape(s)
	}
	return strings.Join(parts, ", ")
}

// formatCount writes n with thousands separators: 60965224 -> 60,965,224.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatBig writes n with an SI prefix: 15.47 G, 724.4 M, 3,210.
func formatBig(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f G", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f M", float64(n)/1e6)
	}
	return formatCount(n)
}

// formatBytes writes a float32 element count as memory.
func formatBytes(elements int64) string {
	b := float64(elements) * 4
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func formatField(rf []int, stride []float64) string {
	if rf == nil {
		return ""
	}
	parts := make([]string, len(rf))
	for i := range rf {
		parts[i] = strconv.Itoa(rf[i])
	}
	st := make([]string, len(stride))
	for i, s := range stride {
		st[i] = strconv.FormatFloat(s, 'g', 4, 64)
	}
	return strings.Join(parts, "×") + " /" + strings.Join(st, "×")
}

var tableHeader = []string{"layer", "type", "bottoms → tops", "top shapes", "blobs", "learnable", "MACs", "memory", "field /stride"}

func summaryRow(l graph.LayerSummary) []string {
	params, macs, memory := "", "", ""
	if len(l.BlobShapes) > 0 {
		params = formatCount(l.Learnable)
		if l.Statistics > 0 {
			params += fmt.Sprintf(" (+%s stats)", formatCount(l.Statistics))
		}
	}
	if l.MACs > 0 {
		macs = formatBig(l.MACs)
	}
	if l.Activation > 0 {
		memory = formatBytes(l.Activation)
	}
	return []string{
		l.Name, l.Type,
		strings.Join(l.Bottoms, ", ") + " → " + strings.Join(l.Tops, ", "),
		formatShapes(l.TopShapes),
		formatShapes(l.BlobShapes),
		params, macs, memory,
		formatField(l.ReceptiveField, l.Stride),
	}
}

func printSummaryTable(w io.Writer, s *graph.Summary, notes []caffe.Note, markdown bool) error {
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: []tw.Align{tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignLeft}}),
	}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	table := tablewriter.NewTable(w, opts...)
	table.Header(tableHeader)
	for _, l := range s.Layers {
		if err := table.Append(summaryRow(l)); err != nil {
			return err
		}
	}
	if err := table.Render(); err != nil {
		return err
	}
	name := s.Name
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "\nnet %s from %s: %d layers\n", name, s.Source, len(s.Layers))
	learnable := formatCount(s.Unique)
	if s.Unique != s.Learnable {
		learnable += fmt.Sprintf(" (%s counting blobs shared by name once per layer)", formatCount(s.Learnable))
	}
	fmt.Fprintf(w, "learnable parameters: %s\n", learnable)
	fmt.Fprintf(w, "stored values: %s (learnable + %s statistics)\n", formatCount(s.Stored), formatCount(s.Statistics))
	if !s.HasWeights {
		fmt.Fprintln(w, "(no weights given: blob shapes follow from the layer parameters)")
	}
	fmt.Fprintf(w, "multiply-adds: %s (Convolution, Deconvolution, InnerProduct); other operations: %s\n", formatCount(s.MACs), formatCount(s.OtherOps))
	fmt.Fprintf(w, "activation memory: %s (float32, in-place tops not counted)\n", formatBytes(s.Activation))
	if len(s.Unknown) > 0 {
		fmt.Fprintln(w, "unknown shapes:")
		for _, u := range s.Unknown {
			fmt.Fprintln(w, "  "+u)
		}
	}
	problems := false
	for _, l := range s.Layers {
		if l.Problem != "" {
			if !problems {
				fmt.Fprintln(w, "problems:")
				problems = true
			}
			fmt.Fprintf(w, "  %s (%s): %s\n", l.Name, l.Type, l.Problem)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n.String())
		}
	}
	return nil
}

func printSummaryCSV(w io.Writer, s *graph.Summary) error {
	cw := csv.NewWriter(w)
	header := []string{"layer", "type", "bottoms", "tops", "top_shapes", "blob_shapes", "learnable", "statistics", "macs", "other_ops", "activation", "receptive_field", "stride"}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, l := range s.Layers {
		rf := formatField(l.ReceptiveField, l.Stride)
		field, stride, _ := strings.Cut(rf, " /")
		rec := []string{l.Name, l.Type, strings.Join(l.Bottoms, " "), strings.Join(l.Tops, " "),
			strings.ReplaceAll(formatShapes(l.TopShapes), "×", "x"), strings.ReplaceAll(formatShapes(l.BlobShapes), "×", "x"),
			strconv.FormatInt(l.Learnable, 10), strconv.FormatInt(l.Statistics, 10), strconv.FormatInt(l.MACs, 10),
			strconv.FormatInt(l.OtherOps, 10), strconv.FormatInt(l.Activation, 10),
			strings.ReplaceAll(field, "×", "x"), strings.ReplaceAll(stride, "×", "x")}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonNote is the stable JSON form of a reader note.
type jsonNote struct {
	Kind     string `json:"kind"`
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Offset   int64  `json:"offset,omitempty"`
	Layer    string `json:"layer,omitempty"`
	Message  string `json:"message"`
	Location string `json:"location"`
}

func printSummaryJSON(w io.Writer, s *graph.Summary, notes []caffe.Note) error {
	out := struct {
		*graph.Summary
		Notes []jsonNote `json:"notes"`
	}{Summary: s, Notes: []jsonNote{}}
	for _, n := range notes {
		jn := jsonNote{Kind: n.Kind.String(), File: n.File, Line: n.Line, Column: n.Column, Layer: n.Layer, Message: n.Message, Location: n.Location.String()}
		if n.Offset > 0 {
			jn.Offset = n.Offset
		}
		out.Notes = append(out.Notes, jn)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
