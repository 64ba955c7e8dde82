// Package yamlfield reads the scalar fields of a YAML document from its
// node tree (go.yaml.in/yaml/v3), with errors that name the field and its
// line: the shared toolkit of the deployment spec (protocol/deployspec)
// and the simulator's scenarios (firmware-sim/scenario).
//
// A [Reader] carries the sentinel its errors match with errors.Is, so
// each format keeps its own (deployspec.ErrSpec, scenario.ErrScenario).
package yamlfield

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"edgeota/protocol/decimal"
)

// Error is a problem at one line of a YAML document.
type Error struct {
	// Line is the 1-based line of the YAML, 0 when unknown.
	Line int
	// Msg says what is wrong, without the line.
	Msg string
	// Kind is the sentinel errors.Is matches (the Reader's).
	Kind error
}

// Error returns the message prefixed with the line, as in
// `line 12: bake "10": want a duration such as 90s, 10m or 72h`.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Is makes errors.Is(err, e.Kind) true.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Reader reads fields; its errors are [*Error] of kind Kind.
type Reader struct {
	// Kind is the sentinel of every error the Reader returns.
	Kind error
}

// Errorf returns an [*Error] at n's line (n may be nil: line unknown).
func (r Reader) Errorf(n *yaml.Node, format string, args ...any) error {
	e := &Error{Msg: fmt.Sprintf(format, args...), Kind: r.Kind}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// IsSet reports whether a field is present and not null; n may be nil.
func IsSet(n *yaml.Node) bool {
	return n != nil && n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Scalar returns a field's single value.
func (r Reader) Scalar(n *yaml.Node, name string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", r.Errorf(n, "%s: want a single value", name)
	}
	return n.Value, nil
}

// Uint reads a whole number.
func (r Reader) Uint(n *yaml.Node, name string) (uint64, error) {
	s, err := r.Scalar(n, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, r.Errorf(n, "%s %q: want a whole number", name, s)
	}
	return v, nil
}

// Duration reads a non-negative Go duration (90s, 10m, 72h).
func (r Reader) Duration(n *yaml.Node, name string) (time.Duration, error) {
	s, err := r.Scalar(n, name)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, r.Errorf(n, "%s %q: want a duration such as 500ms, 90s, 10m or 72h", name, s)
	}
	if d < 0 {
		return 0, r.Errorf(n, "%s %q is negative", name, s)
	}
	return d, nil
}

// Decimal reads a non-negative decimal with at most places decimals and
// returns it scaled by 10^places, exactly (never through floating point).
func (r Reader) Decimal(n *yaml.Node, name string, places int) (uint64, error) {
	s, err := r.Scalar(n, name)
	if err != nil {
		return 0, err
	}
	v, err := decimal.Parse(s, places)
	switch {
	case errors.Is(err, decimal.ErrPlaces):
		return 0, r.Errorf(n, "%s %q has more than %d decimals", name, s, places)
	case err != nil:
		return 0, r.Errorf(n, "%s %q: want a non-negative decimal number", name, s)
	}
	return v, nil
}
