package scenario

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	fixed "edgeota/protocol/decimal"
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fields checks that n is a mapping with no keys but known ones, each at
// most once, and returns its values by key.
func fields(n *yaml.Node, known ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "want a mapping with the fields %s", strings.Join(known, ", "))
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !contains(known, k.Value) {
			return nil, errAt(k, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
		}
		if _, dup := m[k.Value]; dup {
			return nil, errAt(k, "field %q repeated", k.Value)
		}
		m[k.Value] = n.Content[i+1]
	}
	return m, nil
}

// isSet reports whether a field is present and not null; n may be nil.
func isSet(n *yaml.Node) bool {
	return n != nil && n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func scalar(n *yaml.Node, name string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, "%s: want a single value", name)
	}
	return n.Value, nil
}

// requiredString reads a string field; parent names the line when it is
// missing.
func requiredString(parent, n *yaml.Node, name string) (string, error) {
	if !isSet(n) {
		return "", errAt(parent, "%s is required", name)
	}
	s, err := scalar(n, name)
	if err == nil && s == "" {
		err = errAt(n, "%s is empty", name)
	}
	return s, err
}

func optionalString(n *yaml.Node, name string) (string, error) {
	if !isSet(n) {
		return "", nil
	}
	return scalar(n, name)
}

// oneOf reads a field whose value is one of allowed; absent, it is the
// first.
func oneOf(n *yaml.Node, name string, allowed ...string) (string, error) {
	if !isSet(n) {
		return allowed[0], nil
	}
	v, err := scalar(n, name)
	if err != nil {
		return "", err
	}
	if !contains(allowed, v) {
		return "", errAt(n, "%s %q: want %s", name, v, strings.Join(allowed, " or "))
	}
	return v, nil
}

func optionalUint(n *yaml.Node, name string, def uint64) (uint64, error) {
	if !isSet(n) {
		return def, nil
	}
	return parseUint(n, name)
}

func optionalUintPtr(n *yaml.Node, name string) (*uint64, error) {
	if !isSet(n) {
		return nil, nil
	}
	v, err := parseUint(n, name)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func parseUint(n *yaml.Node, name string) (uint64, error) {
	s, err := scalar(n, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errAt(n, "%s %q: want a whole number", name, s)
	}
	return v, nil
}

func optionalFloat(n *yaml.Node, name string, def, lo, hi float64) (float64, error) {
	if !isSet(n) {
		return def, nil
	}
	s, err := scalar(n, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errAt(n, "%s %q: want a number", name, s)
	}
	if v < lo || v > hi {
		return 0, errAt(n, "%s %s: want %g to %g", name, s, lo, hi)
	}
	return v, nil
}

func optionalDuration(n *yaml.Node, name string, def time.Duration) (time.Duration, error) {
	if !isSet(n) {
		return def, nil
	}
	return duration(n, name)
}

func duration(n *yaml.Node, name string) (time.Duration, error) {
	s, err := scalar(n, name)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errAt(n, "%s %q: want a duration such as 500ms, 90s or 10m", name, s)
	}
	if d < 0 {
		return 0, errAt(n, "%s %q is negative", name, s)
	}
	return d, nil
}

// decimal parses a non-negative decimal with at most places decimals and
// returns it scaled by 10^places, exactly (never through floating point).
func decimal(n *yaml.Node, name string, places int) (uint64, error) {
	s, err := scalar(n, name)
	if err != nil {
		return 0, err
	}
	v, err := fixed.Parse(s, places)
	switch {
	case errors.Is(err, fixed.ErrPlaces):
		return 0, errAt(n, "%s %q has more than %d decimals", name, s, places)
	case err != nil:
		return 0, errAt(n, "%s %q: want a non-negative decimal number", name, s)
	}
	return v, nil
}
