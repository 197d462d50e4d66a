package cli

import (
	"encoding/json"
	"fmt"
	"unicode"

	"github.com/jmespath/go-jmespath"
)

// query is a compiled --query expression.
type query struct {
	expr string
	jp   *jmespath.JMESPath
	// hashes are the key lists of the expression's multiselect hashes ({Name:name, RG:group}),
	// in source order. go-jmespath builds Go maps for them, while az builds OrderedDicts whose
	// order table and tsv output keep; node() restores it from here.
	hashes [][]string
}

// compileQuery compiles expr. Like az (argparse type=jmespath_type), a syntax error is a usage
// error raised while the command line is parsed.
func compileQuery(expr string) (*query, error) {
	jp, err := jmespath.Compile(expr)
	if err != nil {
		return nil, &UsageError{
			Msg:            fmt.Sprintf("argument --query: invalid jmespath_type value: %s", pythonRepr(expr)),
			Recommendation: queryReference,
		}
	}
	return &query{expr: expr, jp: jp, hashes: multiselectKeys(expr)}, nil
}

// search applies the query. Evaluation errors (a function given the wrong type) are az's
// "Invalid jmespath query supplied for `--query`".
func (q *query) search(v any) (result any, err error) {
	defer func() {
		// go-jmespath has panicked on unexpected input shapes in the past; the user should see a
		// query error, not a Go stack.
		if r := recover(); r != nil {
			result, err = nil, q.invalid(fmt.Errorf("%v", r))
		}
	}()
	result, err = q.jp.Search(v)
	if err != nil {
		return nil, q.invalid(err)
	}
	return result, nil
}

func (q *query) invalid(err error) error {
	return &UserError{Msg: "Invalid jmespath query supplied for `--query`: " + err.Error(),
		Recommendation: queryReference, Err: err}
}

// multiselectKeys scans a JMESPath expression for multiselect hashes and returns their keys in
// the order written. It skips raw strings ('...'), JSON literals (`...`) and reads quoted
// identifiers ("..."), so braces and colons inside those do not count.
func multiselectKeys(expr string) [][]string {
	type frame struct {
		hash      bool
		keys      []string
		seen      map[string]bool
		expectKey bool
	}
	var stack []*frame
	var out [][]string
	rs := []rune(expr)
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	// addKey records k if it stands where a hash expects a key and a colon follows it.
	addKey := func(k string, next int) {
		f := top()
		if f == nil || !f.hash || !f.expectKey {
			return
		}
		for next < len(rs) && unicode.IsSpace(rs[next]) {
			next++
		}
		if next < len(rs) && rs[next] == ':' {
			if !f.seen[k] {
				f.seen[k] = true
				f.keys = append(f.keys, k)
			}
			f.expectKey = false
		}
	}
	// skipQuoted returns the index of the closing quote of the literal starting at i.
	skipQuoted := func(i int, q rune) int {
		for j := i + 1; j < len(rs); j++ {
			if rs[j] == '\\' {
				j++
				continue
			}
			if rs[j] == q {
				return j
			}
		}
		return len(rs)
	}
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\'' || c == '`':
			i = skipQuoted(i, c)
		case c == '"':
			end := skipQuoted(i, '"')
			if end < len(rs) {
				var k string
				if json.Unmarshal([]byte(string(rs[i:end+1])), &k) == nil {
					addKey(k, end+1)
				}
			}
			i = end
		case c == '{':
			stack = append(stack, &frame{hash: true, expectKey: true, seen: map[string]bool{}})
		case c == '[' || c == '(':
			stack = append(stack, &frame{})
		case c == '}' || c == ']' || c == ')':
			if f := top(); f != nil {
				stack = stack[:len(stack)-1]
				if f.hash && c == '}' {
					out = append(out, f.keys)
				}
			}
		case c == ',':
			if f := top(); f != nil && f.hash {
				f.expectKey = true
			}
		case c == '_' || unicode.IsLetter(c):
			j := i
			for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
				j++
			}
			addKey(string(rs[i:j]), j)
			i = j - 1
		}
	}
	return out
}
