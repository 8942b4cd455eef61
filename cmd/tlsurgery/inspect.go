package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

func newInspectCommand(stdout io.Writer) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect NET [WEIGHTS]",
		Short: "List the layers of a net with their blobs and parameter counts",
		Long: `inspect prints one row per layer: name, type, bottoms and tops, the shape
of each stored blob and its learnable parameter count, then the totals
and the notes of the reader (format upgrades, unknown fields kept).

NET is a .prototxt or a .caffemodel (a caffemodel carries its net, so it
is enough alone). WEIGHTS, when given, is a caffemodel whose blobs are
matched to NET's layers by name. Weight values are not decoded.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			net, notes, err := loadStructure(args)
			if err != nil {
				return err
			}
			summary := graph.Summarize(net)
			switch format {
			case "table":
				return printSummaryTable(stdout, summary, notes)
			case "json":
				return printSummaryJSON(stdout, summary, notes)
			}
			return fmt.Errorf("unknown --format %q; use table or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
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
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "×")
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

func printSummaryTable(w io.Writer, s *graph.Summary, notes []caffe.Note) error {
	table := tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: []tw.Align{tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignRight}}),
	)
	table.Header("layer", "type", "bottoms → tops", "blobs", "learnable")
	for _, l := range s.Layers {
		shapes := make([]string, len(l.BlobShapes))
		for i, sh := range l.BlobShapes {
			shapes[i] = formatShape(sh)
		}
		params := ""
		if len(l.BlobShapes) > 0 {
			params = formatCount(l.Learnable)
		}
		if err := table.Append(l.Name, l.Type, strings.Join(l.Bottoms, ", ")+" → "+strings.Join(l.Tops, ", "), strings.Join(shapes, ", "), params); err != nil {
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
	fmt.Fprintf(w, "net %s from %s: %d layers\n", name, s.Source, len(s.Layers))
	if s.HasWeights {
		fmt.Fprintf(w, "learnable parameters: %s\n", formatCount(s.Learnable))
		fmt.Fprintf(w, "stored values: %s (learnable + %s statistics)\n", formatCount(s.Stored), formatCount(s.Statistics))
	} else {
		fmt.Fprintln(w, "no weights: give a caffemodel to count parameters")
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n.String())
		}
	}
	return nil
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
