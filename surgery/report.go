package surgery

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNothingToDo is returned (wrapped) when an operation finds nothing to
// change, for example fc2conv on a net with no InnerProduct layer left.
var ErrNothingToDo = errors.New("surgery: nothing to change")

// Change is one thing an operation did, or refused to do, to a layer.
type Change struct {
	Layer  string `json:"layer"`
	Detail string `json:"detail"`
}

// Report lists what an operation changed and what it left alone, and why.
type Report struct {
	Operation string   `json:"operation"`
	Changes   []Change `json:"changes"`
	Refused   []Change `json:"refused"`  // layers the operation could not change, with the reason
	Outputs   []string `json:"outputs"`  // the result's output blobs with their shapes
	Warnings  []string `json:"warnings"` // facts the user should check
}

func newReport(op string) *Report {
	return &Report{Operation: op, Changes: []Change{}, Refused: []Change{}, Outputs: []string{}, Warnings: []string{}}
}

func (r *Report) changef(layer, format string, args ...any) {
	r.Changes = append(r.Changes, Change{Layer: layer, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) refusef(layer, format string, args ...any) {
	r.Refused = append(r.Refused, Change{Layer: layer, Detail: fmt.Sprintf(format, args...)})
}

// String formats the report as indented lines for a terminal.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d changed, %d left as they were\n", r.Operation, len(r.Changes), len(r.Refused))
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "  %s: %s\n", c.Layer, c.Detail)
	}
	if len(r.Refused) > 0 {
		b.WriteString("not changed:\n")
		for _, c := range r.Refused {
			fmt.Fprintf(&b, "  %s: %s\n", c.Layer, c.Detail)
		}
	}
	if len(r.Outputs) > 0 {
		b.WriteString("outputs:\n")
		for _, o := range r.Outputs {
			fmt.Fprintf(&b, "  %s\n", o)
		}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}
