package deployspec

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"edgeota/protocol/yamlfield"

	"edgeota/protocol"
	"edgeota/protocol/cohort"
)

// ErrSpec is wrapped by every error about the YAML itself.
var ErrSpec = errors.New("deployment spec")

// Error is a problem at one line of the YAML; errors.Is(err, ErrSpec)
// holds for it.
type Error = yamlfield.Error

// field reads the spec's fields, its errors wrapping ErrSpec.
var field = yamlfield.Reader{Kind: ErrSpec}

func errAt(n *yaml.Node, format string, args ...any) error { return field.Errorf(n, format, args...) }

// Spec is the YAML form of a deployment. Scalars are kept as YAML nodes so
// that conversions see the exact text and errors name the line.
type Spec struct {
	ID               yaml.Node `yaml:"id"`
	Seq              yaml.Node `yaml:"seq"`
	Manifest         yaml.Node `yaml:"manifest"`
	Origin           yaml.Node `yaml:"origin"`
	TargetCohort     yaml.Node `yaml:"target_cohort"`
	Waves            yaml.Node `yaml:"waves"`
	Gates            yaml.Node `yaml:"gates"`
	OnFailure        yaml.Node `yaml:"on_failure"`
	NodeTimeout      yaml.Node `yaml:"node_timeout"`
	MaxConcurrent    yaml.Node `yaml:"max_concurrent"`
	Gateways         yaml.Node `yaml:"gateways"`
	Expires          yaml.Node `yaml:"expires"`
	RollbackManifest yaml.Node `yaml:"rollback_manifest"`
}

type waveSpec struct {
	Percent yaml.Node `yaml:"percent"`
	Bake    yaml.Node `yaml:"bake"`
}

type gatesSpec struct {
	MaxFailed            yaml.Node `yaml:"max_failed"`
	MaxErrorRate         yaml.Node `yaml:"max_error_rate"`
	MaxLatencyP99        yaml.Node `yaml:"max_latency_p99"`
	MaxLatencyRegression yaml.Node `yaml:"max_latency_regression"`
	MinReports           yaml.Node `yaml:"min_reports"`
	MaxBootLoops         yaml.Node `yaml:"max_boot_loops"`
	Metrics              yaml.Node `yaml:"metrics"`
}

// ReadFunc reads a file named in the spec (manifest, rollback_manifest),
// relative to wherever the caller decides.
type ReadFunc func(name string) ([]byte, error)

// Parse reads a deployment spec and converts it into a Deployment with the
// given issue time; Expires is issued plus the spec's expires duration.
// read loads the signed manifests the spec names. The manifests are checked
// to be manifest envelopes, not verified: that needs the manifest keys.
func Parse(src []byte, issued time.Time, read ReadFunc) (*protocol.Deployment, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpec, err)
	}
	d := &protocol.Deployment{Issued: uint64(issued.Unix())}
	var err error
	if d.ID, err = requiredString(&s.ID, "id"); err != nil {
		return nil, err
	}
	if !protocol.ValidID(d.ID) {
		return nil, errAt(&s.ID, "id %q does not match [A-Za-z0-9._-]{1,64}", d.ID)
	}
	if d.Seq, err = requiredUint(&s.Seq, "seq"); err != nil {
		return nil, err
	}
	if d.Seq == 0 {
		return nil, errAt(&s.Seq, "seq must be at least 1")
	}
	if d.Manifest, err = loadManifest(&s.Manifest, "manifest", true, read); err != nil {
		return nil, err
	}
	if d.RollbackManifest, err = loadManifest(&s.RollbackManifest, "rollback_manifest", false, read); err != nil {
		return nil, err
	}
	if d.Origin, err = optionalString(&s.Origin); err != nil {
		return nil, err
	}
	if d.Origin != "" && !strings.HasPrefix(d.Origin, "http://") && !strings.HasPrefix(d.Origin, "https://") {
		return nil, errAt(&s.Origin, "origin %q is not an http:// or https:// URL", d.Origin)
	}
	if d.Cohort, err = requiredString(&s.TargetCohort, "target_cohort"); err != nil {
		return nil, err
	}
	if _, err := cohort.Parse(d.Cohort); err != nil {
		return nil, errAt(&s.TargetCohort, "target_cohort: %v", err)
	}
	if d.Waves, err = parseWaves(&s.Waves); err != nil {
		return nil, err
	}
	if d.Gates, err = parseGates(&s.Gates); err != nil {
		return nil, err
	}
	switch v, _ := optionalString(&s.OnFailure); v {
	case "", "pause":
		d.OnFailure = protocol.FailurePause
	case "rollback":
		d.OnFailure = protocol.FailureRollback
	default:
		return nil, errAt(&s.OnFailure, "on_failure %q: want pause or rollback", v)
	}
	if d.NodeTimeoutSeconds, err = seconds(&s.NodeTimeout, "node_timeout", 30*time.Minute); err != nil {
		return nil, err
	}
	if d.NodeTimeoutSeconds == 0 {
		return nil, errAt(&s.NodeTimeout, "node_timeout must be positive")
	}
	if d.MaxConcurrent, err = optionalUint(&s.MaxConcurrent, 20); err != nil {
		return nil, err
	}
	if d.MaxConcurrent == 0 {
		return nil, errAt(&s.MaxConcurrent, "max_concurrent must be at least 1")
	}
	if d.Gateways, err = stringList(&s.Gateways, "gateways"); err != nil {
		return nil, err
	}
	for _, g := range d.Gateways {
		if !protocol.ValidID(g) {
			return nil, errAt(&s.Gateways, "gateway id %q does not match [A-Za-z0-9._-]{1,64}", g)
		}
	}
	exp, err := seconds(&s.Expires, "expires", 72*time.Hour)
	if err != nil {
		return nil, err
	}
	if exp == 0 {
		return nil, errAt(&s.Expires, "expires must be positive")
	}
	d.Expires = d.Issued + exp
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpec, err)
	}
	return d, nil
}

func requiredString(n *yaml.Node, name string) (string, error) {
	if !yamlfield.IsSet(n) {
		return "", errAt(nil, "%s is required", name)
	}
	return field.Scalar(n, name)
}

func optionalString(n *yaml.Node) (string, error) {
	if !yamlfield.IsSet(n) {
		return "", nil
	}
	return field.Scalar(n, "value")
}

func requiredUint(n *yaml.Node, name string) (uint64, error) {
	if !yamlfield.IsSet(n) {
		return 0, errAt(nil, "%s is required", name)
	}
	return field.Uint(n, name)
}

func optionalUint(n *yaml.Node, def uint64) (uint64, error) {
	if !yamlfield.IsSet(n) {
		return def, nil
	}
	return field.Uint(n, "value")
}

// seconds parses a Go duration into whole seconds.
func seconds(n *yaml.Node, name string, def time.Duration) (uint64, error) {
	d := def
	if yamlfield.IsSet(n) {
		var err error
		if d, err = field.Duration(n, name); err != nil {
			return 0, err
		}
	}
	if d%time.Second != 0 {
		return 0, errAt(n, "%s %v: want whole seconds", name, d)
	}
	return uint64(d / time.Second), nil
}

func stringList(n *yaml.Node, name string) ([]string, error) {
	if !yamlfield.IsSet(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "%s: want a list", name)
	}
	var out []string
	for _, c := range n.Content {
		s, err := field.Scalar(c, name)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func loadManifest(n *yaml.Node, name string, required bool, read ReadFunc) ([]byte, error) {
	if !yamlfield.IsSet(n) {
		if required {
			return nil, errAt(nil, "%s is required: the path of a signed manifest", name)
		}
		return nil, nil
	}
	path, err := field.Scalar(n, name)
	if err != nil {
		return nil, err
	}
	b, err := read(path)
	if err != nil {
		return nil, errAt(n, "%s: %v", name, err)
	}
	if err := checkManifestEnvelope(b); err != nil {
		return nil, errAt(n, "%s %s: %v", name, path, err)
	}
	return b, nil
}

func parseWaves(n *yaml.Node) ([]protocol.Wave, error) {
	if !yamlfield.IsSet(n) {
		return nil, errAt(nil, "waves is required, e.g. waves: [{percent: 10, bake: 10m}, {percent: 100, bake: 0s}]")
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, errAt(n, "waves: want a non-empty list of {percent, bake}")
	}
	var out []protocol.Wave
	var prev uint64
	for i, c := range n.Content {
		var w waveSpec
		if err := c.Decode(&w); err != nil {
			return nil, errAt(c, "wave %d: %v", i+1, err)
		}
		if err := knownKeys(c, "percent", "bake"); err != nil {
			return nil, err
		}
		if !yamlfield.IsSet(&w.Percent) {
			return nil, errAt(c, "wave %d: percent is required", i+1)
		}
		bp, err := field.Decimal(&w.Percent, "percent", 2)
		if err != nil {
			return nil, err
		}
		if bp == 0 || bp > 10000 {
			return nil, errAt(&w.Percent, "wave %d: percent %s: want more than 0 and at most 100", i+1, w.Percent.Value)
		}
		if bp <= prev {
			return nil, errAt(&w.Percent, "wave %d: percent %s is not above the previous wave's (percents are cumulative)", i+1, w.Percent.Value)
		}
		prev = bp
		bake, err := seconds(&w.Bake, "bake", 0)
		if err != nil {
			return nil, err
		}
		out = append(out, protocol.Wave{BasisPoints: bp, BakeSeconds: bake})
	}
	if prev != 10000 {
		last := n.Content[len(n.Content)-1]
		return nil, errAt(last, "the last wave must reach percent 100")
	}
	return out, nil
}

// knownKeys refuses keys of a mapping node other than names.
func knownKeys(n *yaml.Node, names ...string) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, "want a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ok := false
		for _, name := range names {
			ok = ok || k.Value == name
		}
		if !ok {
			return errAt(k, "unknown field %q (known: %s)", k.Value, strings.Join(names, ", "))
		}
	}
	return nil
}

func parseGates(n *yaml.Node) (protocol.Gates, error) {
	var g protocol.Gates
	if !yamlfield.IsSet(n) {
		return g, nil
	}
	var s gatesSpec
	if err := n.Decode(&s); err != nil {
		return g, errAt(n, "gates: %v", err)
	}
	if err := knownKeys(n, "max_failed", "max_error_rate", "max_latency_p99", "max_latency_regression",
		"min_reports", "max_boot_loops", "metrics"); err != nil {
		return g, err
	}
	opt := func(node *yaml.Node, conv func(*yaml.Node) (uint64, error)) (*uint64, error) {
		if !yamlfield.IsSet(node) {
			return nil, nil
		}
		v, err := conv(node)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
	var err error
	whole := func(name string) func(*yaml.Node) (uint64, error) {
		return func(x *yaml.Node) (uint64, error) { return field.Uint(x, name) }
	}
	if g.MaxFailed, err = opt(&s.MaxFailed, whole("max_failed")); err != nil {
		return g, err
	}
	if g.MaxErrorPermille, err = opt(&s.MaxErrorRate, func(x *yaml.Node) (uint64, error) {
		v, err := field.Decimal(x, "max_error_rate", 3)
		if err == nil && v > 1000 {
			err = errAt(x, "max_error_rate %s is a fraction and cannot exceed 1", x.Value)
		}
		return v, err
	}); err != nil {
		return g, err
	}
	if g.MaxLatencyP99Micros, err = opt(&s.MaxLatencyP99, func(x *yaml.Node) (uint64, error) {
		d, err := field.Duration(x, "max_latency_p99")
		if err != nil {
			return 0, err
		}
		if d%time.Microsecond != 0 {
			return 0, errAt(x, "max_latency_p99 %v: want whole microseconds", d)
		}
		return uint64(d / time.Microsecond), nil
	}); err != nil {
		return g, err
	}
	if g.MaxLatencyRegressionPermille, err = opt(&s.MaxLatencyRegression, func(x *yaml.Node) (uint64, error) {
		return field.Decimal(x, "max_latency_regression", 3)
	}); err != nil {
		return g, err
	}
	if g.MinReports, err = opt(&s.MinReports, whole("min_reports")); err != nil {
		return g, err
	}
	if g.MaxBootLoops, err = opt(&s.MaxBootLoops, whole("max_boot_loops")); err != nil {
		return g, err
	}
	if yamlfield.IsSet(&s.Metrics) {
		if s.Metrics.Kind != yaml.MappingNode {
			return g, errAt(&s.Metrics, "metrics: want a mapping of metric name to maximum")
		}
		g.Metrics = map[string]int64{}
		for i := 0; i+1 < len(s.Metrics.Content); i += 2 {
			k, v := s.Metrics.Content[i], s.Metrics.Content[i+1]
			if !protocol.ValidLabelKey(k.Value) {
				return g, errAt(k, "metric name %q does not match [a-z0-9_.-]{1,32}", k.Value)
			}
			x, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || v.Kind != yaml.ScalarNode {
				return g, errAt(v, "metric %s: want a whole number", k.Value)
			}
			g.Metrics[k.Value] = x
		}
	}
	return g, nil
}
