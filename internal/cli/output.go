package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// outputFormats are the values of -o, in the order az lists them in its usage error.
func outputFormats() []string {
	return []string{"json", "jsonc", "yaml", "yamlc", "table", "tsv", "none"}
}

// The formatters below reproduce knack's (knack/output.py), which az uses, on top of Python's
// json, PyYAML and tabulate. Their inputs are "nodes": nil, bool, string, float64, json.Number
// (integers too large for a float64), []any and *object.

// object is a JSON object as the formatters see it. Go maps forget key order, but az's output
// depends on it in two places: tsv prints an OrderedDict (a --query multiselect hash, a table
// transformer row) in insertion order and sorts plain dicts; table output with --query keeps
// a dict's insertion order. json and yaml always sort.
type object struct {
	keys    []string
	vals    map[string]any
	ordered bool // an OrderedDict in az's terms
}

func (o *object) sortedKeys() []string {
	keys := slices.Clone(o.keys)
	sort.Strings(keys) // byte order of UTF-8 is code point order, which Python's sort uses
	return keys
}

// newRow builds an ordered object from key, value pairs: the rows table transformers return.
func newRow(kv ...any) *object {
	o := &object{vals: map[string]any{}, ordered: true}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if _, dup := o.vals[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = kv[i+1]
	}
	return o
}

// field walks nested objects: field(v, "properties", "provisioningState"). Missing → nil.
func field(v any, path ...string) any {
	for _, k := range path {
		o, ok := v.(*object)
		if !ok {
			return nil
		}
		v = o.vals[k]
	}
	return v
}

// document is decoded JSON in the shape go-jmespath searches (map[string]any, []any, float64,
// string, bool, nil) plus the key order of every object in it, remembered by map identity so
// that it survives a --query that returns parts of the document.
type document struct {
	root  any
	order map[uintptr][]string
}

func mapIdentity(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }

// decodeDocument decodes one JSON value.
func decodeDocument(data []byte) (*document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	d := &document{order: map[uintptr][]string{}}
	root, err := d.decode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	d.root = root
	return d, nil
}

func (d *document) decode(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			list := []any{}
			for dec.More() {
				v, err := d.decode(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		m := map[string]any{}
		var keys []string
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			k, _ := kt.(string)
			v, err := d.decode(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; !dup { // like Python: the last value wins, the first position stays
				keys = append(keys, k)
			}
			m[k] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		d.order[mapIdentity(m)] = keys
		return m, nil
	case json.Number:
		return jsonNumber(t), nil
	default:
		return t, nil
	}
}

// jsonNumber converts a number to the float64 JMESPath computes with, unless that would lose
// an integer's digits. Integral float64 values print as integers below, which is what the
// daemon (Go's encoder never writes "1.0") and az's int values give.
func jsonNumber(n json.Number) any {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || i > 1<<53 || i < -(1<<53) {
			return n
		}
		return float64(i)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	return f
}

// node turns a searched value into formatter nodes. Key order comes from, first, a multiselect
// hash of the query whose keys the map has (an OrderedDict in az); then the decoded document;
// else sorted order for maps the query built (merge()).
func (d *document) node(v any, hashes [][]string) any {
	switch t := v.(type) {
	case map[string]any:
		o := &object{vals: make(map[string]any, len(t))}
		if keys := matchHash(t, hashes); keys != nil {
			o.keys, o.ordered = keys, true
		} else if keys, ok := d.order[mapIdentity(t)]; ok && len(keys) == len(t) {
			o.keys = keys
		} else {
			for k := range t {
				o.keys = append(o.keys, k)
			}
			sort.Strings(o.keys)
		}
		for k, x := range t {
			o.vals[k] = d.node(x, hashes)
		}
		return o
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = d.node(x, hashes)
		}
		return out
	default:
		return v
	}
}

func matchHash(m map[string]any, hashes [][]string) []string {
	for _, keys := range hashes {
		if len(keys) != len(m) {
			continue
		}
		all := true
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				all = false
				break
			}
		}
		if all {
			return keys
		}
	}
	return nil
}

// renderSettings say how to render one result.
type renderSettings struct {
	format      string
	queryActive bool
	// transform is the command's table transformer (az's table_transformer); table output
	// applies it only without --query.
	transform func(any) any
	color     bool
}

// render formats v (a node; nil is never rendered, as az prints nothing for None).
func render(v any, s renderSettings) (string, error) {
	switch s.format {
	case "json":
		return formatJSON(v, false), nil
	case "jsonc":
		return formatJSON(v, s.color), nil
	case "yaml":
		return formatYAML(v, false), nil
	case "yamlc":
		return formatYAML(v, s.color), nil
	case "table":
		return formatTable(v, s)
	case "tsv":
		return formatTSV(v), nil
	case "none":
		return "", nil
	}
	return "", fmt.Errorf("unknown output format %q", s.format)
}

// ---- json ----

// jsonStyle selects among Python json.dumps behaviours.
type jsonStyle struct {
	indent      string
	sortKeys    bool
	ensureASCII bool
	color       bool
}

// formatJSON is knack's format_json: json.dumps(indent=2, sort_keys=True, ensure_ascii=False),
// colored for jsonc as pygments' TerminalFormatter colors its JSON lexer's tokens.
func formatJSON(v any, color bool) string {
	var b strings.Builder
	st := jsonStyle{indent: "  ", sortKeys: true, color: color}
	writeJSON(&b, v, st, 0)
	st.space(&b, "\n")
	return b.String()
}

// pygments' terminal colors for JSON tokens (Name.Tag, String, Number, Keyword.Constant and
// Whitespace).
const (
	colorKey        = "\x1b[94m"
	colorString     = "\x1b[33m"
	colorLiteral    = "\x1b[34m"
	colorWhitespace = "\x1b[37m"
	colorReset      = "\x1b[39;49;00m"
)

// space writes a run of whitespace; colored, it is what pygments' TerminalFormatter makes of a
// Whitespace token: each line's text wrapped in gray, line breaks outside the codes.
func (st jsonStyle) space(b *strings.Builder, s string) {
	if !st.color {
		b.WriteString(s)
		return
	}
	for _, line := range strings.SplitAfter(s, "\n") {
		if line == "" {
			continue
		}
		b.WriteString(colorWhitespace + strings.TrimSuffix(line, "\n") + colorReset)
		if strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
}

func writeJSON(b *strings.Builder, v any, st jsonStyle, depth int) {
	paint := func(color, s string) {
		if st.color {
			b.WriteString(color + s + colorReset)
		} else {
			b.WriteString(s)
		}
	}
	newline := func(d int) { st.space(b, "\n"+strings.Repeat(st.indent, d)) }
	switch t := v.(type) {
	case *object:
		if len(t.keys) == 0 {
			b.WriteString("{}")
			return
		}
		keys := t.keys
		if st.sortKeys {
			keys = t.sortedKeys()
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(depth + 1)
			paint(colorKey, pythonJSONString(k, st.ensureASCII))
			b.WriteByte(':')
			st.space(b, " ")
			writeJSON(b, t.vals[k], st, depth+1)
		}
		newline(depth)
		b.WriteByte('}')
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(depth + 1)
			writeJSON(b, x, st, depth+1)
		}
		newline(depth)
		b.WriteByte(']')
	case string:
		paint(colorString, pythonJSONString(t, st.ensureASCII))
	case nil:
		paint(colorLiteral, "null")
	case bool:
		paint(colorLiteral, strconv.FormatBool(t))
	case float64:
		paint(colorLiteral, pythonJSONFloat(t))
	case json.Number:
		paint(colorLiteral, t.String())
	default:
		fmt.Fprintf(b, "%v", t)
	}
}

// pythonJSONString quotes s as Python's json module does: short escapes for \" \\ \n \r \t
// \b \f, \u00XX (lower-case hex) for other control characters and, with ensureASCII, \uXXXX
// (surrogate pairs above the BMP) for everything outside printable ASCII.
func pythonJSONString(s string, ensureASCII bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(&b, `\u%04x`, r)
			case ensureASCII && r > 0x7e && r <= 0xffff:
				fmt.Fprintf(&b, `\u%04x`, r)
			case ensureASCII && r > 0xffff:
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// pythonJSONFloat writes a number as Python would: integers plainly (see jsonNumber), other
// floats with repr()'s shortest round-trip digits, NaN and infinities as json.dumps does.
func pythonJSONFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return pythonFloat(f)
}

// pythonFloat is Python's str() of a number: an integral value below 2**53 as an integer,
// otherwise repr(float): fixed notation for decimal exponents -4..15, else scientific with a
// two-digit exponent ("1e+16", "1.5e-05") — Go's 'e' format matches that part.
func pythonFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp >= -4 && exp < 16 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return e
}

// pythonStr is Python's str() of a value, which tsv and table cells use.
func pythonStr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return t
	case float64:
		return pythonFloat(t)
	case json.Number:
		return t.String()
	default:
		return pythonRepr(v)
	}
}

// pythonRepr is Python's repr(): strings quoted, containers written out ({'k': 'v'}, [1, 2]).
func pythonRepr(v any) string {
	switch t := v.(type) {
	case string:
		return pythonReprString(t)
	case *object:
		parts := make([]string, len(t.keys))
		for i, k := range t.keys {
			parts[i] = pythonReprString(k) + ": " + pythonRepr(t.vals[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = pythonRepr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return pythonStr(v)
	}
}

func pythonReprString(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r > 0x7f && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r > 0x7f && !unicode.IsPrint(r):
			if r <= 0xffff {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}

// ---- tsv ----

// formatTSV is knack's _TsvOutput: one line per item of a list (or for the single value);
// an object's values tab-separated — in insertion order for OrderedDicts, sorted by key
// otherwise; nested objects as an empty field, nested lists as their length; None as "None".
func formatTSV(v any) string {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var b strings.Builder
	for _, item := range items {
		switch t := item.(type) {
		case *object:
			keys := t.keys
			if !t.ordered {
				keys = t.sortedKeys()
			}
			for i, k := range keys {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvField(t.vals[k]))
			}
		case []any:
			for i, x := range t {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvField(x))
			}
		case bool:
			b.WriteString(strconv.FormatBool(t)) // knack lower-cases a bool row, not a bool field
		default:
			b.WriteString(tsvField(item))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func tsvField(v any) string {
	switch t := v.(type) {
	case []any:
		return strconv.Itoa(len(t))
	case *object:
		return ""
	default:
		return pythonStr(v)
	}
}

// ---- table ----

// errTableUnavailable is knack's answer when no column can be extracted.
var errTableUnavailable = &UserError{Msg: "Table output unavailable. Use the --query option to specify an appropriate query. Use --debug for more info."}

// formatTable is knack's _TableOutput fed to tabulate(tablefmt="simple", disable_numparse=True):
// a column per top-level scalar key (id, type and etag skipped, None and nested values
// dropped), headed by the key with its first letter upper-cased; keys sorted unless a --query
// or a table transformer chose them; a list item that is a list gives Column1..N, a scalar
// gives Result.
func formatTable(v any, s renderSettings) (string, error) {
	if s.transform != nil && !s.queryActive {
		v = s.transform(v)
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	sortKeys := !s.queryActive && s.transform == nil
	var rows []*object
	for _, item := range items {
		rows = append(rows, tableRow(item, sortKeys))
	}
	if len(rows) == 0 {
		return "\n", nil
	}
	var headers []string
	seen := map[string]bool{}
	for _, r := range rows {
		for _, k := range r.keys {
			if !seen[k] {
				seen[k] = true
				headers = append(headers, k)
			}
		}
	}
	if len(headers) == 0 {
		return "", errTableUnavailable
	}
	return tabulate(headers, rows), nil
}

func tableRow(item any, sortKeys bool) *object {
	row := newRow()
	switch t := item.(type) {
	case *object:
		keys := t.keys
		if sortKeys {
			keys = t.sortedKeys()
		}
		for _, k := range keys {
			if k == "id" || k == "type" || k == "etag" {
				continue
			}
			switch val := t.vals[k].(type) {
			case nil, *object, []any:
				continue
			default:
				row = appendCell(row, capitalizeFirst(k), val)
			}
		}
	case []any:
		for i, x := range t {
			row = appendCell(row, fmt.Sprintf("Column%d", i+1), x)
		}
	default:
		row = appendCell(row, "Result", item)
	}
	return row
}

func appendCell(row *object, k string, v any) *object {
	if _, dup := row.vals[k]; !dup {
		row.keys = append(row.keys, k)
	}
	row.vals[k] = v
	return row
}

func capitalizeFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// tabulate renders tabulate's "simple" format with every column left-aligned (numparse is off,
// so every cell is text): a column is as wide as its widest cell or its header plus two, cells
// are stripped, lines right-trimmed, multi-line cells spread over several lines.
func tabulate(headers []string, rows []*object) string {
	cells := make([][][]string, len(rows)) // row → column → lines
	widths := make([]int, len(headers))
	for c, h := range headers {
		widths[c] = utf8.RuneCountInString(h) + 2
	}
	for r, row := range rows {
		cells[r] = make([][]string, len(headers))
		for c, h := range headers {
			text := ""
			if v, ok := row.vals[h]; ok && v != nil {
				text = strings.TrimSpace(pythonStr(v))
			}
			lines := strings.Split(text, "\n")
			cells[r][c] = lines
			for _, l := range lines {
				widths[c] = max(widths[c], utf8.RuneCountInString(l))
			}
		}
	}
	var b strings.Builder
	writeLine := func(parts []string) {
		for i, p := range parts {
			parts[i] = p + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(p))
		}
		b.WriteString(strings.TrimRightFunc(strings.Join(parts, "  "), unicode.IsSpace))
		b.WriteByte('\n')
	}
	writeLine(slices.Clone(headers))
	dashes := make([]string, len(headers))
	for i, w := range widths {
		dashes[i] = strings.Repeat("-", w)
	}
	writeLine(dashes)
	for _, row := range cells {
		height := 1
		for _, lines := range row {
			height = max(height, len(lines))
		}
		for l := 0; l < height; l++ {
			parts := make([]string, len(headers))
			for c, lines := range row {
				if l < len(lines) {
					parts[c] = lines[l]
				}
			}
			writeLine(parts)
		}
	}
	return b.String()
}
