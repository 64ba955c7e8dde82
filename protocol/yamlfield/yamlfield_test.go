package yamlfield_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"edgeota/protocol/yamlfield"
)

var errKind = errors.New("test format")

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0].Content[1] // the value of the document's one key
}

func TestReader(t *testing.T) {
	r := yamlfield.Reader{Kind: errKind}
	for _, tc := range []struct {
		src  string
		read func(n *yaml.Node) (any, error)
		want any
		err  string
	}{
		{"a: 42", func(n *yaml.Node) (any, error) { return r.Uint(n, "a") }, uint64(42), ""},
		{"a: -1", func(n *yaml.Node) (any, error) { return r.Uint(n, "a") }, nil, `line 1: a "-1": want a whole number`},
		{"\na: [1]", func(n *yaml.Node) (any, error) { return r.Scalar(n, "a") }, nil, "line 2: a: want a single value"},
		{"a: 90s", func(n *yaml.Node) (any, error) { return r.Duration(n, "a") }, 90 * time.Second, ""},
		{"a: -5s", func(n *yaml.Node) (any, error) { return r.Duration(n, "a") }, nil, "is negative"},
		{"a: 10", func(n *yaml.Node) (any, error) { return r.Duration(n, "a") }, nil, "want a duration"},
		{"a: 0.025", func(n *yaml.Node) (any, error) { return r.Decimal(n, "a", 3) }, uint64(25), ""},
		{"a: 0.0255", func(n *yaml.Node) (any, error) { return r.Decimal(n, "a", 3) }, nil, "more than 3 decimals"},
	} {
		got, err := tc.read(node(t, tc.src))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errKind) {
				t.Errorf("%q: error %v, want one containing %q that is errKind", tc.src, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.src, got, err, tc.want)
		}
	}
	if yamlfield.IsSet(nil) || yamlfield.IsSet(node(t, "a: null")) || !yamlfield.IsSet(node(t, "a: 0")) {
		t.Error("IsSet")
	}
}
