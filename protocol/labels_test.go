package protocol

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFormatLabels(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"none", nil, ""},
		{"empty", map[string]string{}, ""},
		{"one", map[string]string{"hw": "rev2"}, "hw=rev2"},
		{"key order", map[string]string{"region": "eu", "hw": "rev2", "a": "b"}, "a=b,hw=rev2,region=eu"},
		// By key, not by the pair's text: "a-b=x" sorts before "a=y".
		{"key that prefixes another", map[string]string{"a-b": "x", "a": "y"}, "a=y,a-b=x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := FormatLabels(c.labels)
			if got != c.want {
				t.Fatalf("FormatLabels = %q, want %q", got, c.want)
			}
			back, err := ParseLabels(got)
			if err != nil {
				t.Fatalf("ParseLabels(%q): %v", got, err)
			}
			if !maps.Equal(back, c.labels) && len(back)+len(c.labels) != 0 {
				t.Errorf("ParseLabels(%q) = %v, want %v", got, back, c.labels)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		want    map[string]string
		wantErr string
	}{
		{"empty", "", map[string]string{}, ""},
		{"blank", "  ", map[string]string{}, ""},
		{"spaces", " hw = rev2 , region=eu", map[string]string{"hw": "rev2", "region": "eu"}, ""},
		{"no equals", "hw", nil, `"hw" is not key=value`},
		{"twice", "hw=a,hw=b", nil, `"hw" given twice`},
		{"bad key", "HW=a", nil, "label key"},
		{"empty value", "hw=", nil, "value"},
		{"trailing comma", "hw=a,", nil, `"" is not key=value`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseLabels(c.text)
			if c.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, c.want) {
				t.Fatalf("= %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"ascii", "abcdef", 5, "abcde"},
		{"zero", "abc", 0, ""},
		{"negative", "abc", -1, ""},
		{"before a two-byte character", "abcdé", 5, "abcd"}, // é is 2 bytes at 4-5
		{"after a two-byte character", "abcdéf", 6, "abcdé"},
		{"inside a four-byte character", "ab😀", 5, "ab"},
		{"invalid UTF-8 kept as bytes", "ab\xff\xffcd", 4, "ab\xff\xff"},
		{"empty", "", 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Truncate(c.s, c.n)
			if got != c.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
			}
			if utf8.ValidString(c.s) && !utf8.ValidString(got) {
				t.Errorf("cut a character: %q", got)
			}
		})
	}
}

// A reason cut to MaxReasonLen always passes the status event's check.
func TestTruncatedReasonValidates(t *testing.T) {
	e := StatusEvent{NodeID: "n1", State: StateFailed, Number: 1, Reason: Truncate(strings.Repeat("é", 200), MaxReasonLen)}
	if len(e.Reason) != MaxReasonLen {
		t.Fatalf("reason of %d bytes, want %d", len(e.Reason), MaxReasonLen)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	e.Reason += "x"
	if err := e.Validate(); err == nil {
		t.Fatalf("a reason of %d bytes validated", len(e.Reason))
	}
}
