package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestMultiselectKeys(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want [][]string
	}{
		{"name", nil},
		{"[].{Name:name, RG:resourceGroup}", [][]string{{"Name", "RG"}}},
		{`[].{"a b": x, c: {d: y, "e": z}}`, [][]string{{"d", "e"}, {"a b", "c"}}},
		{"[?name=='{x: y}'].{k: `{\"j\": 1}`}", [][]string{{"k"}}},
		{"{a: [1:2], b: f(x, y), c: a || b}", [][]string{{"a", "b", "c"}}},
		{"{a: x, a: y}", [][]string{{"a"}}},
		{"[?a > `1`].[b, c]", nil},
	} {
		if got := multiselectKeys(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("multiselectKeys(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestCompileQueryErrorIsAzUsageError(t *testing.T) {
	_, err := compileQuery("[.name")
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UsageError", err)
	}
	if ue.Msg != "argument --query: invalid jmespath_type value: '[.name'" || ue.Recommendation != queryReference {
		t.Errorf("got %q / %q", ue.Msg, ue.Recommendation)
	}
}

func TestQuerySearchErrors(t *testing.T) {
	q, err := compileQuery("abs(name)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.search(map[string]any{"name": "x"})
	msg, rec, code := describeError(err)
	if code != exitFailure || rec != queryReference || !strings.HasPrefix(msg, "Invalid jmespath query supplied for `--query`: Invalid type for: x") {
		t.Errorf("got %q %q %d", msg, rec, code)
	}
}
