package scenario

import (
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"edgeota/protocol/yamlfield"
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

// requiredString reads a string field; parent names the line when it is
// missing.
func requiredString(parent, n *yaml.Node, name string) (string, error) {
	if !yamlfield.IsSet(n) {
		return "", errAt(parent, "%s is required", name)
	}
	s, err := field.Scalar(n, name)
	if err == nil && s == "" {
		err = errAt(n, "%s is empty", name)
	}
	return s, err
}

func optionalString(n *yaml.Node, name string) (string, error) {
	if !yamlfield.IsSet(n) {
		return "", nil
	}
	return field.Scalar(n, name)
}

// oneOf reads a field whose value is one of allowed; absent, it is the
// first.
func oneOf(n *yaml.Node, name string, allowed ...string) (string, error) {
	if !yamlfield.IsSet(n) {
		return allowed[0], nil
	}
	v, err := field.Scalar(n, name)
	if err != nil {
		return "", err
	}
	if !contains(allowed, v) {
		return "", errAt(n, "%s %q: want %s", name, v, strings.Join(allowed, " or "))
	}
	return v, nil
}

func optionalUint(n *yaml.Node, name string, def uint64) (uint64, error) {
	if !yamlfield.IsSet(n) {
		return def, nil
	}
	return field.Uint(n, name)
}

func optionalUintPtr(n *yaml.Node, name string) (*uint64, error) {
	if !yamlfield.IsSet(n) {
		return nil, nil
	}
	v, err := field.Uint(n, name)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func optionalFloat(n *yaml.Node, name string, def, lo, hi float64) (float64, error) {
	if !yamlfield.IsSet(n) {
		return def, nil
	}
	s, err := field.Scalar(n, name)
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
	if !yamlfield.IsSet(n) {
		return def, nil
	}
	return field.Duration(n, name)
}
