package caffe

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTextValues(t *testing.T) {
	src := `# comment
name: "net" # trailing comment
layer {
  top: 'a' "b"
  dim: [1, 3, -5]
  f: 1.5e-3f, g: -inf; h: nan
  nested < x: 0x1F >
}
`
	m, err := parseText(src, "x.prototxt")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.fields) != 2 {
		t.Fatalf("got %d top-level fields, want 2", len(m.fields))
	}
	if got := m.fields[0].values[0].str; got != "net" {
		t.Errorf("name = %q, want net", got)
	}
	layer := m.fields[1]
	if layer.pos != (textPos{3, 1}) {
		t.Errorf("layer at %v, want 3:1", layer.pos)
	}
	fields := layer.msg.fields
	if got := fields[0].values[0].str; got != "ab" {
		t.Errorf("joined string = %q, want ab", got)
	}
	if !fields[1].list || len(fields[1].values) != 3 || fields[1].values[2].raw != "-5" {
		t.Errorf("list = %+v", fields[1])
	}
	if fields[2].values[0].raw != "1.5e-3f" || fields[3].values[0].raw != "-inf" || fields[4].values[0].raw != "nan" {
		t.Errorf("numbers = %q %q %q", fields[2].values[0].raw, fields[3].values[0].raw, fields[4].values[0].raw)
	}
	if fields[5].msg == nil || fields[5].msg.open != "<" || fields[5].msg.fields[0].values[0].raw != "0x1F" {
		t.Errorf("angle-bracket message = %+v", fields[5])
	}
}

func TestParseTextEscapes(t *testing.T) {
	m, err := parseText(`s: "a\n\t\"\\\101\x42\u00e9"`, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.fields[0].values[0].str, "a\n\t\"\\ABé"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseTextErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"missing brace", "layer {\n  name: \"a\"\n", "3:1: unexpected end of input"},
		{"template variable", "num_output: ${NUM_LABELS}", "1:13: expected a value, found '$' (the file is a template"},
		{"unterminated string", "name: \"abc\n", "1:7: unterminated string"},
		{"missing colon", "name \"a\"", "1:6: expected ':' or '{'"},
		{"stray close", "}", "1:1: expected a field name"},
		{"bad escape", `s: "\q"`, "1:5: invalid escape"},
		{"list of messages", "a: [{}]", "lists of messages are not supported"},
		{"binary bytes", "\x0a\x05LeNet", "expected a field name"},
		{"deep nesting", strings.Repeat("a {", 200), "nested deeper than 100 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseText(tt.src, "net.prototxt")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "net.prototxt") {
				t.Errorf("error %q does not contain the file and %q", err, tt.want)
			}
		})
	}
}
