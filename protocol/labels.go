package protocol

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// FormatLabels writes a label set in its text form, key=value pairs joined
// by commas in key order ("hw=rev2,region=eu"), the form of the command
// line's --labels and of every listing; an empty set is the empty string.
// Keys and values of valid labels (section 0) hold neither ',' nor '=', so
// [ParseLabels] reads the text back to the same set.
func FormatLabels(labels map[string]string) string {
	var sb strings.Builder
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(labels[k])
	}
	return sb.String()
}

// ParseLabels reads a label set in the text form of [FormatLabels]; spaces
// around keys and values are dropped, the empty string is the empty set,
// and every key and value must be valid (section 0). Errors wrap
// [ErrInvalid].
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w: label %q is not key=value", ErrInvalid, kv)
		}
		k = strings.TrimSpace(k)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: label %q given twice", ErrInvalid, k)
		}
		out[k] = strings.TrimSpace(v)
	}
	if err := ValidateLabels(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Truncate returns s cut to at most n bytes without splitting a UTF-8
// character: for the bounded texts of the contract, a status event's
// reason ([MaxReasonLen]) and a 4.00's text ([MaxErrorTextLen]).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	// Back up over continuation bytes to the start of the character that
	// does not fit whole.
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
