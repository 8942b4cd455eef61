package caffe

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The protobuf text format is parsed in two steps: this file turns the
// bytes into a tree of fields (textMessage) that is independent of the
// schema but keeps every position; text_decode.go then fills generated
// messages from the tree. Keeping the tree lets the reader see how
// `layer` and `layers` entries interleave, keep fields the schema lacks,
// and report line:column for every problem.

// maxTextDepth bounds message nesting so hostile input cannot exhaust the
// stack; real nets nest fewer than 10 levels.
const maxTextDepth = 100

type textPos struct{ line, col int }

// textValue is one scalar token: an identifier (true, MAX, inf), a number
// or a string (with adjacent string literals joined).
type textValue struct {
	pos  textPos
	kind textValueKind
	raw  string // source text of the token, e.g. `0.5f`, `'a' "b"`
	str  string // decoded contents, for strings only
}

type textValueKind int

const (
	textIdent textValueKind = iota + 1
	textNumber
	textString
)

// textField is one `name: value`, `name: [v, ...]` or `name { ... }`.
type textField struct {
	pos    textPos
	name   string
	values []textValue  // scalars; empty for a message field
	msg    *textMessage // nil for a scalar field
	list   bool         // the value was written as a [ ] list
}

type textMessage struct {
	fields []*textField
	open   string // "{" or "<"
}

type textParser struct {
	src  string
	file string
	off  int
	line int
	col  int
}

func parseText(src, file string) (*textMessage, error) {
	p := &textParser{src: src, file: file, line: 1, col: 1}
	m, err := p.message(0, "")
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (p *textParser) errorf(pos textPos, hint, format string, args ...any) error {
	loc := NoLocation(p.file)
	loc.Line, loc.Column = pos.line, pos.col
	return &FormatError{Location: loc, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

func (p *textParser) pos() textPos { return textPos{p.line, p.col} }

func (p *textParser) advance(n int) {
	for i := 0; i < n && p.off < len(p.src); i++ {
		if p.src[p.off] == '\n' {
			p.line++
			p.col = 1
		} else if p.src[p.off]&0xC0 != 0x80 {
			p.col++ // count runes, not continuation bytes
		}
		p.off++
	}
}

// skipSpace skips white space, `#` comments and the optional `,` or `;`
// separators between fields.
func (p *textParser) skipSpace(separators bool) {
	for p.off < len(p.src) {
		c := p.src[p.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.advance(1)
		case c == '#':
			end := strings.IndexByte(p.src[p.off:], '\n')
			if end < 0 {
				end = len(p.src) - p.off
			}
			p.advance(end)
		case separators && (c == ',' || c == ';'):
			p.advance(1)
		default:
			return
		}
	}
}

func (p *textParser) peek() byte {
	if p.off < len(p.src) {
		return p.src[p.off]
	}
	return 0
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

func (p *textParser) ident() string {
	start := p.off
	for p.off < len(p.src) && (isIdentChar(p.src[p.off]) || p.src[p.off] == '.') {
		p.advance(1)
	}
	return p.src[start:p.off]
}

// message parses fields until the closing delimiter (or end of input at
// depth 0).
func (p *textParser) message(depth int, closing string) (*textMessage, error) {
	if depth > maxTextDepth {
		return nil, p.errorf(p.pos(), "", "messages nested deeper than %d levels", maxTextDepth)
	}
	m := &textMessage{}
	for {
		p.skipSpace(true)
		if p.off >= len(p.src) {
			if closing != "" {
				return nil, p.errorf(p.pos(), "the file is truncated or a brace is missing", "unexpected end of input, expected %q", closing)
			}
			return m, nil
		}
		c := p.peek()
		if closing != "" && string(c) == closing {
			p.advance(1)
			return m, nil
		}
		f, err := p.field(depth)
		if err != nil {
			return nil, err
		}
		m.fields = append(m.fields, f)
	}
}

func (p *textParser) field(depth int) (*textField, error) {
	f := &textField{pos: p.pos()}
	c := p.peek()
	switch {
	case c == '[':
		// An extension or Any type URL: [pkg.ext] or [type.googleapis.com/x].
		end := strings.IndexByte(p.src[p.off:], ']')
		if end < 0 {
			return nil, p.errorf(f.pos, "", "unterminated extension name")
		}
		f.name = p.src[p.off : p.off+end+1]
		p.advance(end + 1)
	case isIdentStart(c):
		f.name = p.ident()
	default:
		return nil, p.errorf(f.pos, textHint(c), "expected a field name, found %s", describeByte(p.src, p.off))
	}

	p.skipSpace(false)
	colon := false
	if p.peek() == ':' {
		colon = true
		p.advance(1)
		p.skipSpace(false)
	}
	switch c := p.peek(); {
	case c == '{' || c == '<':
		closing := "}"
		if c == '<' {
			closing = ">"
		}
		open := string(c)
		p.advance(1)
		m, err := p.message(depth+1, closing)
		if err != nil {
			return nil, err
		}
		m.open = open
		f.msg = m
		return f, nil
	case !colon:
		return nil, p.errorf(p.pos(), textHint(c), "expected ':' or '{' after field %q, found %s", f.name, describeByte(p.src, p.off))
	case c == '[':
		f.list = true
		p.advance(1)
		for {
			p.skipSpace(false)
			if p.peek() == ']' {
				p.advance(1)
				return f, nil
			}
			if len(f.values) > 0 {
				if p.peek() != ',' {
					return nil, p.errorf(p.pos(), "", "expected ',' or ']' in the list of field %q, found %s", f.name, describeByte(p.src, p.off))
				}
				p.advance(1)
				p.skipSpace(false)
			}
			if q := p.peek(); q == '{' || q == '<' {
				return nil, p.errorf(p.pos(), "write each message as its own `name { ... }` entry", "lists of messages are not supported for field %q", f.name)
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			f.values = append(f.values, v)
		}
	default:
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		f.values = []textValue{v}
		return f, nil
	}
}

// value parses one scalar: a string (adjacent literals are joined), a
// number, or an identifier, with an optional leading minus sign.
func (p *textParser) value() (textValue, error) {
	v := textValue{pos: p.pos()}
	start := p.off
	c := p.peek()
	switch {
	case c == '"' || c == '\'':
		var b strings.Builder
		for c == '"' || c == '\'' {
			s, err := p.stringLiteral()
			if err != nil {
				return v, err
			}
			b.WriteString(s)
			p.skipSpace(false)
			c = p.peek()
		}
		v.kind, v.str = textString, b.String()
		v.raw = strings.TrimRight(p.src[start:p.off], " \t\r\n")
		return v, nil
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		p.advance(1)
		for p.off < len(p.src) {
			d := p.src[p.off]
			if isIdentChar(d) || d == '.' || (d == '-' || d == '+') && (p.src[p.off-1] == 'e' || p.src[p.off-1] == 'E') {
				p.advance(1)
				continue
			}
			break
		}
		v.kind, v.raw = textNumber, p.src[start:p.off]
		if v.raw == "-" || v.raw == "+" {
			return v, p.errorf(v.pos, "", "expected a number after %q", v.raw)
		}
		return v, nil
	case isIdentStart(c):
		v.kind, v.raw = textIdent, p.ident()
		return v, nil
	}
	return v, p.errorf(v.pos, textHint(c), "expected a value, found %s", describeByte(p.src, p.off))
}

// stringLiteral parses one quoted string and decodes C-style escapes:
// \n \r \t \v \f \a \b \\ \' \" \? , octal \NNN, hex \xHH, \uXXXX, \UXXXXXXXX.
func (p *textParser) stringLiteral() (string, error) {
	pos := p.pos()
	quote := p.src[p.off]
	p.advance(1)
	var b strings.Builder
	for {
		if p.off >= len(p.src) || p.src[p.off] == '\n' {
			return "", p.errorf(pos, "close the string on the same line", "unterminated string")
		}
		c := p.src[p.off]
		if c == quote {
			p.advance(1)
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			p.advance(1)
			continue
		}
		epos := p.pos()
		p.advance(1)
		if p.off >= len(p.src) {
			return "", p.errorf(pos, "", "unterminated string")
		}
		e := p.src[p.off]
		p.advance(1)
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'f':
			b.WriteByte('\f')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case '\\', '\'', '"', '?':
			b.WriteByte(e)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := int(e - '0')
			for i := 0; i < 2 && p.off < len(p.src) && p.src[p.off] >= '0' && p.src[p.off] <= '7'; i++ {
				n = n*8 + int(p.src[p.off]-'0')
				p.advance(1)
			}
			if n > 255 {
				return "", p.errorf(epos, "", "octal escape \\%o is larger than a byte", n)
			}
			b.WriteByte(byte(n))
		case 'x', 'X', 'u', 'U':
			digits := map[byte]int{'x': 2, 'X': 2, 'u': 4, 'U': 8}[e]
			start := p.off
			for p.off < len(p.src) && p.off-start < digits && isHex(p.src[p.off]) {
				p.advance(1)
			}
			if p.off == start || (e == 'u' || e == 'U') && p.off-start != digits {
				return "", p.errorf(epos, "", "invalid \\%c escape", e)
			}
			n, _ := strconv.ParseUint(p.src[start:p.off], 16, 32)
			if e == 'x' || e == 'X' {
				b.WriteByte(byte(n))
			} else {
				if !utf8.ValidRune(rune(n)) {
					return "", p.errorf(epos, "", "invalid code point \\%c%s", e, p.src[start:p.off])
				}
				b.WriteRune(rune(n))
			}
		default:
			return "", p.errorf(epos, "", "invalid escape \\%c", e)
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// describeByte names the character at off for an error message.
func describeByte(src string, off int) string {
	if off >= len(src) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(src[off:])
	if r < ' ' || r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", src[off])
	}
	return strconv.QuoteRune(r)
}

// textHint suggests a fix for a character that cannot start a token.
func textHint(c byte) string {
	if c == '$' {
		return "the file is a template: substitute its ${...} variables first"
	}
	if c < ' ' && c != '\t' && c != '\n' && c != '\r' {
		return "the file looks binary; if it is a caffemodel, check that it is complete"
	}
	return ""
}
