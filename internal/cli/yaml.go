package cli

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// formatYAML renders v as az's `-o yaml` does: PyYAML's safe_dump(default_flow_style=False),
// without allow_unicode. That is block style, keys sorted, two-space indentation, sequences
// inside mappings not indented, empty collections as {} and [], strings quoted only when
// PyYAML's resolver or its scalar analysis requires it (single quotes preferred, double quotes
// with escapes for non-ASCII and control characters), long scalars folded at column 80, and a
// "..." document end after a plain top-level scalar. gopkg.in/yaml.v3 differs from PyYAML in
// each of those, hence this emitter. yamlc colors keys and quoted strings, a subset of what
// pygments' YAML lexer colors.
func formatYAML(v any, color bool) string {
	e := &yamlEmitter{color: color}
	switch t := v.(type) {
	case *object:
		if len(t.keys) == 0 {
			return "{}\n"
		}
		e.mapping(t, 0, false)
	case []any:
		if len(t) == 0 {
			return "[]\n"
		}
		e.sequence(t, 0, false)
	default:
		// PyYAML indents a top-level scalar's continuation lines by its best_indent (2).
		if e.scalar(v, 2, false) == yamlPlain {
			e.b.WriteString("\n...")
		}
	}
	e.b.WriteByte('\n')
	return e.b.String()
}

// yamlWidth is PyYAML's best_width.
const yamlWidth = 80

type yamlStyle int

const (
	yamlPlain yamlStyle = iota
	yamlSingleQuoted
	yamlDoubleQuoted
)

type yamlEmitter struct {
	b      strings.Builder
	column int
	color  bool
}

// write appends text that contains no line break.
func (e *yamlEmitter) write(s string) {
	e.b.WriteString(s)
	e.column += utf8.RuneCountInString(s)
}

// paint switches a color on or off; escape codes take no column.
func (e *yamlEmitter) paint(code string) {
	if e.color {
		e.b.WriteString(code)
	}
}

// indent starts a new line at column n (PyYAML's write_indent), except at the very start.
func (e *yamlEmitter) indent(n int) {
	if e.b.Len() > 0 {
		e.b.WriteByte('\n')
	}
	e.column = 0
	e.write(strings.Repeat(" ", n))
}

// mapping writes a non-empty mapping whose keys sit at column ind. inline means the cursor
// already sits there, after a sequence's "- ".
func (e *yamlEmitter) mapping(o *object, ind int, inline bool) {
	for i, k := range o.sortedKeys() {
		if i > 0 || !inline {
			e.indent(ind)
		}
		if !yamlSimpleKey(k) {
			e.complexEntry(k, o.vals[k], ind)
			continue
		}
		e.paint(colorKey)
		e.scalar(k, ind+2, true)
		e.paint(colorReset)
		e.write(":")
		switch t := o.vals[k].(type) {
		case *object:
			if len(t.keys) > 0 {
				e.mapping(t, ind+2, false)
				continue
			}
		case []any:
			if len(t) > 0 {
				e.sequence(t, ind, false) // PyYAML does not indent a sequence inside a mapping
				continue
			}
		}
		e.write(" ")
		e.value(o.vals[k], ind+2)
	}
}

// yamlSimpleKey is PyYAML's check_simple_key for a string key: not empty, on one line, and
// shorter than 128 characters counting its "!!str" tag.
func yamlSimpleKey(k string) bool {
	a := yamlAnalyze(k)
	return !a.empty && !a.multiline && utf8.RuneCountInString(k)+len("!!str") < 128
}

// complexEntry writes PyYAML's explicit form "? key" / ": value" for a key that cannot be a
// simple key; a collection value then starts on the ": " line.
func (e *yamlEmitter) complexEntry(k string, v any, ind int) {
	e.write("? ")
	e.paint(colorKey)
	e.value(k, ind+2)
	e.paint(colorReset)
	e.indent(ind)
	e.write(": ")
	switch t := v.(type) {
	case *object:
		if len(t.keys) > 0 {
			e.mapping(t, ind+2, true)
			return
		}
	case []any:
		if len(t) > 0 {
			e.sequence(t, ind+2, true)
			return
		}
	}
	e.value(v, ind+2)
}

// sequence writes a non-empty sequence whose dashes sit at column ind.
func (e *yamlEmitter) sequence(list []any, ind int, inline bool) {
	for i, item := range list {
		if i > 0 || !inline {
			e.indent(ind)
		}
		e.write("- ")
		switch t := item.(type) {
		case *object:
			if len(t.keys) > 0 {
				e.mapping(t, ind+2, true)
				continue
			}
		case []any:
			if len(t) > 0 {
				e.sequence(t, ind+2, true)
				continue
			}
		}
		e.value(item, ind+2)
	}
}

// value writes a scalar or an empty collection in flow style.
func (e *yamlEmitter) value(v any, ind int) {
	switch t := v.(type) {
	case *object:
		e.write("{}")
	case []any:
		e.write("[]")
	case string:
		style := yamlChooseStyle(t, false)
		if style != yamlPlain {
			e.paint(colorString)
		}
		e.writeString(t, style, ind, true)
		if style != yamlPlain {
			e.paint(colorReset)
		}
	default:
		e.scalar(v, ind, false)
	}
}

// scalar writes a scalar; ind is where folded lines continue. Keys (simpleKey) are never folded.
func (e *yamlEmitter) scalar(v any, ind int, simpleKey bool) yamlStyle {
	switch t := v.(type) {
	case nil:
		e.write("null")
	case bool:
		e.write(fmt.Sprint(t))
	case float64:
		e.write(yamlFloat(t))
	case json.Number:
		e.write(t.String())
	case string:
		style := yamlChooseStyle(t, simpleKey)
		e.writeString(t, style, ind, !simpleKey)
		return style
	default:
		e.write(pythonStr(v))
	}
	return yamlPlain
}

// yamlFloat is PyYAML's represent_float over Python's repr: "1e+16" becomes "1.0e+16".
func yamlFloat(f float64) string {
	s := pythonFloat(f)
	switch s {
	case "nan":
		return ".nan"
	case "inf":
		return ".inf"
	case "-inf":
		return "-.inf"
	}
	if strings.Contains(s, "e") && !strings.Contains(s, ".") {
		s = strings.Replace(s, "e", ".0e", 1)
	}
	return s
}

func (e *yamlEmitter) writeString(s string, style yamlStyle, ind int, split bool) {
	switch style {
	case yamlPlain:
		e.writePlain(s, ind, split)
	case yamlSingleQuoted:
		e.writeSingleQuoted(s, ind, split)
	default:
		e.writeDoubleQuoted(s, ind, split)
	}
}

// writePlain is PyYAML's write_plain: a single space past column 80 becomes a line break.
func (e *yamlEmitter) writePlain(s string, ind int, split bool) {
	rs := []rune(s)
	spaces := false
	start := 0
	for end := 0; end <= len(rs); end++ {
		ch := rune(-1)
		if end < len(rs) {
			ch = rs[end]
		}
		if spaces {
			if ch != ' ' {
				if start+1 == end && e.column > yamlWidth && split {
					e.indent(ind)
				} else {
					e.write(string(rs[start:end]))
				}
				start = end
			}
		} else if ch == -1 || ch == ' ' {
			e.write(string(rs[start:end]))
			start = end
		}
		if ch != -1 {
			spaces = ch == ' '
		}
	}
}

// writeSingleQuoted is PyYAML's write_single_quoted: quotes doubled, folding at single spaces,
// a line break written as an empty line.
func (e *yamlEmitter) writeSingleQuoted(s string, ind int, split bool) {
	e.write("'")
	rs := []rune(s)
	spaces, breaks := false, false
	start := 0
	for end := 0; end <= len(rs); end++ {
		ch := rune(-1)
		if end < len(rs) {
			ch = rs[end]
		}
		switch {
		case spaces:
			if ch != ' ' {
				if start+1 == end && e.column > yamlWidth && split && start != 0 && end != len(rs) {
					e.indent(ind)
				} else {
					e.write(string(rs[start:end]))
				}
				start = end
			}
		case breaks:
			if ch != '\n' {
				if rs[start] == '\n' {
					e.b.WriteByte('\n')
				}
				for range rs[start:end] {
					e.b.WriteByte('\n')
				}
				e.column = 0
				e.write(strings.Repeat(" ", ind))
				start = end
			}
		default:
			if ch == -1 || ch == ' ' || ch == '\n' || ch == '\'' {
				if start < end {
					e.write(string(rs[start:end]))
					start = end
				}
			}
		}
		if ch == '\'' {
			e.write("''")
			start = end + 1
		}
		if ch != -1 {
			spaces = ch == ' '
			breaks = ch == '\n'
		}
	}
	e.write("'")
}

// yamlEscapes are PyYAML's ESCAPE_REPLACEMENTS.
func yamlEscape(r rune) string {
	switch r {
	case 0:
		return `\0`
	case 0x07:
		return `\a`
	case 0x08:
		return `\b`
	case 0x09:
		return `\t`
	case 0x0a:
		return `\n`
	case 0x0b:
		return `\v`
	case 0x0c:
		return `\f`
	case 0x0d:
		return `\r`
	case 0x1b:
		return `\e`
	case '"':
		return `\"`
	case '\\':
		return `\\`
	case 0x85:
		return `\N`
	case 0xa0:
		return `\_`
	case 0x2028:
		return `\L`
	case 0x2029:
		return `\P`
	}
	switch {
	case r <= 0xff:
		return fmt.Sprintf(`\x%02X`, r)
	case r <= 0xffff:
		return fmt.Sprintf(`\u%04X`, r)
	default:
		return fmt.Sprintf(`\U%08X`, r)
	}
}

// writeDoubleQuoted is PyYAML's write_double_quoted without allow_unicode: everything outside
// printable ASCII escaped, long lines folded with a trailing backslash.
func (e *yamlEmitter) writeDoubleQuoted(s string, ind int, split bool) {
	e.write(`"`)
	rs := []rune(s)
	start := 0
	for end := 0; end <= len(rs); end++ {
		ch := rune(-1)
		if end < len(rs) {
			ch = rs[end]
		}
		if ch == -1 || ch == '"' || ch == '\\' || ch < 0x20 || ch > 0x7e {
			if start < end {
				e.write(string(rs[start:end]))
				start = end
			}
			if ch != -1 {
				e.write(yamlEscape(ch))
				start = end + 1
			}
		}
		if end > 0 && end < len(rs)-1 && (ch == ' ' || start >= end) && e.column+(end-start) > yamlWidth && split {
			data := `\`
			if start < end { // Python's text[start:end] is empty when start passed end
				data = string(rs[start:end]) + data
				start = end
			}
			e.write(data)
			e.indent(ind)
			if rs[start] == ' ' {
				e.write(`\`)
			}
		}
	}
	e.write(`"`)
}

// yamlChooseStyle is PyYAML's choose_scalar_style for a string in block context.
func yamlChooseStyle(s string, simpleKey bool) yamlStyle {
	a := yamlAnalyze(s)
	if yamlResolvesToStr(s) && !(simpleKey && (a.empty || a.multiline)) && a.allowBlockPlain {
		return yamlPlain
	}
	if a.allowSingleQuoted && !(simpleKey && a.multiline) {
		return yamlSingleQuoted
	}
	return yamlDoubleQuoted
}

type yamlAnalysis struct {
	empty, multiline                   bool
	allowBlockPlain, allowSingleQuoted bool
}

func yamlIsBreak(r rune) bool { return r == '\n' || r == 0x85 || r == 0x2028 || r == 0x2029 }

func yamlIsSpaceOrBreak(r rune) bool {
	return r == 0 || r == ' ' || r == '\t' || r == '\r' || yamlIsBreak(r)
}

// yamlAnalyze is PyYAML's analyze_scalar, reduced to what block context needs.
func yamlAnalyze(s string) yamlAnalysis {
	if s == "" {
		return yamlAnalysis{empty: true, allowBlockPlain: true, allowSingleQuoted: true}
	}
	rs := []rune(s)
	var blockIndicators, lineBreaks, special bool
	var leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockIndicators = true
	}
	precededByWS := true
	followedByWS := len(rs) == 1 || yamlIsSpaceOrBreak(rs[1])
	prevSpace, prevBreak := false, false
	for i, ch := range rs {
		if i == 0 {
			if strings.ContainsRune("#,[]{}&*!|>'\"%@`", ch) {
				blockIndicators = true
			}
			if (ch == '?' || ch == ':' || ch == '-') && followedByWS {
				blockIndicators = true
			}
		} else if (ch == ':' && followedByWS) || (ch == '#' && precededByWS) {
			blockIndicators = true
		}
		if yamlIsBreak(ch) {
			lineBreaks = true
		}
		// az's safe_dump runs without allow_unicode: anything but printable ASCII and \n
		// needs double quotes.
		if !(ch == '\n' || (ch >= 0x20 && ch <= 0x7e)) {
			special = true
		}
		switch {
		case ch == ' ':
			leadingSpace = leadingSpace || i == 0
			trailingSpace = trailingSpace || i == len(rs)-1
			breakSpace = breakSpace || prevBreak
			prevSpace, prevBreak = true, false
		case yamlIsBreak(ch):
			leadingBreak = leadingBreak || i == 0
			trailingBreak = trailingBreak || i == len(rs)-1
			spaceBreak = spaceBreak || prevSpace
			prevSpace, prevBreak = false, true
		default:
			prevSpace, prevBreak = false, false
		}
		precededByWS = yamlIsSpaceOrBreak(ch)
		followedByWS = i+2 >= len(rs) || yamlIsSpaceOrBreak(rs[i+2])
	}
	a := yamlAnalysis{multiline: lineBreaks, allowBlockPlain: true, allowSingleQuoted: true}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak || lineBreaks || blockIndicators {
		a.allowBlockPlain = false
	}
	if breakSpace || spaceBreak || special {
		a.allowBlockPlain, a.allowSingleQuoted = false, false
	}
	return a
}

// yamlImplicit matches the plain scalars PyYAML's (YAML 1.1) resolver reads as something other
// than a string: bool, float, int, merge, null, timestamp, value and yaml tags.
var yamlImplicit = regexp.MustCompile(`^(?:` +
	`yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` +
	`|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?` +
	`|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` +
	`|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` +
	`|<<|~|null|Null|NULL|` +
	`|[0-9]{4}-[0-9]{2}-[0-9]{2}` +
	`|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?` +
	`|=|!|&|\*` +
	`)$`)

func yamlResolvesToStr(s string) bool { return !yamlImplicit.MatchString(s) }
