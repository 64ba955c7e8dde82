package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"edgeota/firmware-sim/radio"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/cohort"
	"edgeota/protocol/yamlfield"
)

// ErrScenario is wrapped by every error about the scenario file itself.
var ErrScenario = errors.New("scenario")

// Error is a problem at one line of a scenario file, as in
// `line 12: unknown field "bake_time" (known: percent, bake)`;
// errors.Is(err, ErrScenario) holds for it.
type Error = yamlfield.Error

// field reads the scenario's fields, its errors wrapping ErrScenario.
var field = yamlfield.Reader{Kind: ErrScenario}

// errAt returns an [*Error] at n's line; n may be nil (line unknown).
func errAt(n *yaml.Node, format string, args ...any) error { return field.Errorf(n, format, args...) }

// file is the top level of a scenario file. Scalars and nested mappings stay
// YAML nodes so that conversions see the exact text and errors name the line.
type file struct {
	Name           yaml.Node `yaml:"name"`
	Description    yaml.Node `yaml:"description"`
	Seed           yaml.Node `yaml:"seed"`
	TimeScale      yaml.Node `yaml:"time_scale"`
	Duration       yaml.Node `yaml:"duration"`
	InferenceRate  yaml.Node `yaml:"inference_rate"`
	HealthInterval yaml.Node `yaml:"health_interval"`
	Transport      yaml.Node `yaml:"transport"`
	Provision      yaml.Node `yaml:"provision"`
	Fleet          yaml.Node `yaml:"fleet"`
	Link           yaml.Node `yaml:"link"`
	Models         yaml.Node `yaml:"models"`
	Initial        yaml.Node `yaml:"initial"`
	Deployments    yaml.Node `yaml:"deployments"`
	Faults         yaml.Node `yaml:"faults"`
	Expect         yaml.Node `yaml:"expect"`
}

var topKeys = []string{"name", "description", "seed", "time_scale", "duration", "inference_rate",
	"health_interval", "transport", "provision", "fleet", "link", "models", "initial", "deployments", "faults", "expect"}

// Load reads and parses the scenario file at path. Its errors are those of
// [Parse], prefixed with the path.
func Load(path string) (*Scenario, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse parses and validates a scenario file (see the package documentation
// for its form). Every error wraps [ErrScenario] and, when it is about one
// place of the file, is an [*Error] that names the line.
func Parse(src []byte) (*Scenario, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(src, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &Error{Line: extra.Line, Msg: "more than one YAML document", Kind: ErrScenario}
	}
	var root yaml.Node // for the lines of errors about missing keys
	_ = yaml.Unmarshal(src, &root)
	p := parser{top: &root}
	if len(root.Content) == 1 {
		p.top = root.Content[0]
	}
	s, err := p.scenario(&f)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// decodeError turns a YAML decoding error into an [*Error] with a line:
// unknown top-level fields are reported as knownKeys reports nested ones.
func decodeError(src []byte, err error) error {
	if err == io.EOF {
		return &Error{Msg: "empty scenario file", Kind: ErrScenario}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var doc yaml.Node
		if yaml.Unmarshal(src, &doc) == nil && len(doc.Content) == 1 {
			if _, kerr := fields(doc.Content[0], topKeys...); kerr != nil {
				return kerr
			}
		}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if line, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(line, "line ") {
		if n, perr := strconv.Atoi(strings.TrimPrefix(line, "line ")); perr == nil {
			return &Error{Line: n, Msg: rest, Kind: ErrScenario}
		}
	}
	return &Error{Msg: msg, Kind: ErrScenario}
}

type parser struct {
	top *yaml.Node
	s   *Scenario
}

func (p *parser) scenario(f *file) (*Scenario, error) {
	s := &Scenario{}
	p.s = s
	var err error
	if s.Name, err = requiredString(p.top, &f.Name, "name"); err != nil {
		return nil, err
	}
	if !protocol.ValidID(s.Name) {
		return nil, errAt(&f.Name, "name %q does not match [A-Za-z0-9._-]{1,64}", s.Name)
	}
	if s.Description, err = optionalString(&f.Description, "description"); err != nil {
		return nil, err
	}
	if s.Seed, err = optionalUint(&f.Seed, "seed", 0); err != nil {
		return nil, err
	}
	if s.TimeScale, err = optionalFloat(&f.TimeScale, "time_scale", 1, 1, MaxTimeScale); err != nil {
		return nil, err
	}
	if !yamlfield.IsSet(&f.Duration) {
		return nil, errAt(p.top, "duration is required: the simulated time limit, such as 30m")
	}
	if s.Duration, err = field.Duration(&f.Duration, "duration"); err != nil {
		return nil, err
	}
	if s.Duration <= 0 {
		return nil, errAt(&f.Duration, "duration must be positive")
	}
	if s.InferenceRate, err = optionalFloat(&f.InferenceRate, "inference_rate", 2, 0, 1000); err != nil {
		return nil, err
	}
	if s.InferenceRate == 0 {
		return nil, errAt(&f.InferenceRate, "inference_rate must be above 0")
	}
	if s.HealthInterval, err = optionalDuration(&f.HealthInterval, "health_interval", 30*time.Second); err != nil {
		return nil, err
	}
	if s.HealthInterval < time.Second {
		return nil, errAt(&f.HealthInterval, "health_interval %v: want at least 1s", s.HealthInterval)
	}
	if s.Transport, err = oneOf(&f.Transport, "transport", TransportUDP, TransportDTLS); err != nil {
		return nil, err
	}
	if s.Provision, err = oneOf(&f.Provision, "provision", ProvisionNone, ProvisionBLE); err != nil {
		return nil, err
	}
	if err := p.fleet(&f.Fleet); err != nil {
		return nil, err
	}
	if err := p.link(&f.Link); err != nil {
		return nil, err
	}
	if err := p.models(&f.Models); err != nil {
		return nil, err
	}
	if s.Initial, err = optionalString(&f.Initial, "initial"); err != nil {
		return nil, err
	}
	if s.Initial != "" && s.Model(s.Initial) == nil {
		return nil, errAt(&f.Initial, "initial: no model named %q", s.Initial)
	}
	if err := p.deployments(&f.Deployments); err != nil {
		return nil, err
	}
	if err := p.faults(&f.Faults); err != nil {
		return nil, err
	}
	if err := p.expectations(&f.Expect); err != nil {
		return nil, err
	}
	return s, nil
}

// list returns the items of a sequence; required refuses an absent or
// empty one.
func (p *parser) list(n *yaml.Node, name string, required bool, example string) ([]*yaml.Node, error) {
	if !yamlfield.IsSet(n) {
		if required {
			return nil, errAt(p.top, "%s is required, e.g. %s", name, example)
		}
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "%s: want a list, e.g. %s", name, example)
	}
	if required && len(n.Content) == 0 {
		return nil, errAt(n, "%s: want at least one entry, e.g. %s", name, example)
	}
	return n.Content, nil
}

func (p *parser) fleet(n *yaml.Node) error {
	items, err := p.list(n, "fleet", true, "fleet: [{count: 100, labels: {hw: rev2}}]")
	if err != nil {
		return err
	}
	total := 0
	for _, it := range items {
		m, err := fields(it, "count", "labels", "deltas", "download")
		if err != nil {
			return err
		}
		c, ok := m["count"]
		if !ok {
			return errAt(it, "fleet: count is required")
		}
		count, err := field.Uint(c, "count")
		if err != nil {
			return err
		}
		if count < 1 || count > MaxNodes {
			return errAt(c, "count %d: want 1 to %d", count, MaxNodes)
		}
		total += int(count)
		if total > MaxNodes {
			return errAt(c, "the fleet has %d nodes so far, more than %d", total, MaxNodes)
		}
		g := Group{Count: int(count), Labels: map[string]string{}}
		if g.Download, err = oneOf(m["download"], "download", DownloadQBlock, DownloadLockStep); err != nil {
			return err
		}
		if d, ok := m["deltas"]; ok && yamlfield.IsSet(d) {
			on, err := boolean(d, "deltas")
			if err != nil {
				return err
			}
			g.NoDeltas = !on
		}
		if l, ok := m["labels"]; ok && yamlfield.IsSet(l) {
			if l.Kind != yaml.MappingNode {
				return errAt(l, "labels: want a mapping such as {region: us-east, hw: rev2}")
			}
			for i := 0; i+1 < len(l.Content); i += 2 {
				k, v := l.Content[i], l.Content[i+1]
				if !protocol.ValidLabelKey(k.Value) {
					return errAt(k, "label key %q does not match [a-z0-9_.-]{1,32}", k.Value)
				}
				if v.Kind != yaml.ScalarNode || !protocol.ValidLabelValue(v.Value) {
					return errAt(v, "label %s: value %q does not match [A-Za-z0-9_.:/-]{1,64}", k.Value, v.Value)
				}
				if _, dup := g.Labels[k.Value]; dup {
					return errAt(k, "label %s repeated", k.Value)
				}
				g.Labels[k.Value] = v.Value
			}
		}
		p.s.Fleet = append(p.s.Fleet, g)
	}
	return nil
}

func (p *parser) link(n *yaml.Node) error {
	if !yamlfield.IsSet(n) {
		return nil
	}
	m, err := fields(n, "profile", "hops", "frame_loss", "loss", "latency", "jitter", "duplicate", "reorder", "bandwidth")
	if err != nil {
		return err
	}
	l := &p.s.Link
	if l.Profile, err = optionalString(m["profile"], "profile"); err != nil {
		return err
	}
	if l.Profile != "" {
		r, err := radio.LookupProfile(l.Profile)
		if err != nil {
			return errAt(m["profile"], "link: %v", err)
		}
		*l = Link{Profile: l.Profile, Hops: r.Hops, Latency: r.Latency, Jitter: r.Jitter, Bandwidth: r.Bandwidth,
			FrameMTU: r.FrameMTU, FrameOverhead: r.FrameOverhead, FrameGap: r.FrameGap}
	}
	if l.Loss, err = optionalFloat(m["loss"], "loss", 0, 0, 0.9); err != nil {
		return err
	}
	if l.FrameLoss, err = optionalFloat(m["frame_loss"], "frame_loss", 0, 0, 0.5); err != nil {
		return err
	}
	if l.Duplicate, err = optionalFloat(m["duplicate"], "duplicate", 0, 0, 1); err != nil {
		return err
	}
	if l.Reorder, err = optionalFloat(m["reorder"], "reorder", 0, 0, 1); err != nil {
		return err
	}
	if l.Latency, err = optionalDuration(m["latency"], "latency", l.Latency); err != nil {
		return err
	}
	if l.Jitter, err = optionalDuration(m["jitter"], "jitter", l.Jitter); err != nil {
		return err
	}
	hops, err := optionalUint(m["hops"], "hops", uint64(l.Hops))
	if err != nil {
		return err
	}
	if yamlfield.IsSet(m["hops"]) && (hops < 1 || hops > 32) {
		return errAt(m["hops"], "hops %d: want 1 to 32", hops)
	}
	l.Hops = int(hops)
	bw, err := optionalUint(m["bandwidth"], "bandwidth", uint64(l.Bandwidth))
	if err != nil {
		return err
	}
	if bw > math.MaxInt32 {
		return errAt(m["bandwidth"], "bandwidth %d bits/s is too large", bw)
	}
	l.Bandwidth = int(bw)
	return nil
}

func (p *parser) models(n *yaml.Node) error {
	items, err := p.list(n, "models", true, "models: [{name: v1, version: 1.0.0}]")
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := fields(it, "name", "version", "behaviour", "size", "probation", "from", "changed", "corpus")
		if err != nil {
			return err
		}
		var md Model
		if md.Name, err = requiredString(it, m["name"], "model name"); err != nil {
			return err
		}
		if !protocol.ValidID(md.Name) {
			return errAt(m["name"], "model name %q does not match [A-Za-z0-9._-]{1,64}", md.Name)
		}
		if p.s.Model(md.Name) != nil {
			return errAt(m["name"], "model %s is defined twice", md.Name)
		}
		if md.Version, err = requiredString(it, m["version"], "model "+md.Name+": version"); err != nil {
			return err
		}
		if md.Behaviour, err = optionalString(m["behaviour"], "behaviour"); err != nil {
			return err
		}
		if err := checkBehaviour(md.Behaviour); err != nil {
			return errAt(m["behaviour"], "model %s: behaviour: %v", md.Name, err)
		}
		if md.From, err = optionalString(m["from"], "from"); err != nil {
			return err
		}
		if md.Corpus, err = optionalString(m["corpus"], "corpus"); err != nil {
			return err
		}
		if md.Corpus != "" {
			img, ok := CorpusImage(md.Corpus)
			if !ok {
				return errAt(m["corpus"], "model %s: corpus %q: want PAIR.base or PAIR.target, PAIR one of a-head, b-finetune, c-operator, d-unrelated", md.Name, md.Corpus)
			}
			for _, k := range []string{"size", "from", "changed"} {
				if yamlfield.IsSet(m[k]) {
					return errAt(m[k], "model %s: %s does not apply with corpus (the image is the corpus's)", md.Name, k)
				}
			}
			md.Size = len(img)
		}
		size, err := optionalUint(m["size"], "size", 32768)
		if err != nil {
			return err
		}
		if md.From != "" {
			base := p.s.Model(md.From)
			if base == nil {
				return errAt(m["from"], "model %s: from %q: no model of that name above it", md.Name, md.From)
			}
			if yamlfield.IsSet(m["size"]) {
				return errAt(m["size"], "model %s: size does not apply with from (the image has %s's size)", md.Name, md.From)
			}
			size = uint64(base.Size)
			md.Changed = 1000
			if c, ok := m["changed"]; ok && yamlfield.IsSet(c) {
				if md.Changed, err = percent(c, "changed"); err != nil {
					return err
				}
				if md.Changed == 0 {
					return errAt(c, "model %s: changed 0%%: the image would be %s's", md.Name, md.From)
				}
			}
		} else if yamlfield.IsSet(m["changed"]) {
			return errAt(m["changed"], "model %s: changed applies only with from", md.Name)
		}
		if size < 1 || size > MaxModelSize {
			return errAt(m["size"], "model %s: size %d: want 1 to %d bytes", md.Name, size, MaxModelSize)
		}
		if md.Corpus == "" {
			md.Size = int(size)
		}
		if pr, ok := m["probation"]; ok && yamlfield.IsSet(pr) {
			if md.Probation, err = probation(pr); err != nil {
				return err
			}
		}
		p.s.Models = append(p.s.Models, md)
	}
	return nil
}

// boolean reads a YAML boolean.
func boolean(n *yaml.Node, name string) (bool, error) {
	v, err := field.Scalar(n, name)
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(v)
	if err != nil || (v != "true" && v != "false") {
		return false, errAt(n, "%s %q: want true or false", name, v)
	}
	return b, nil
}

// percent reads a share such as 10% (or 10) as basis points, 0 to 10000.
func percent(n *yaml.Node, name string) (uint64, error) {
	v, err := field.Scalar(n, name)
	if err != nil {
		return 0, err
	}
	pct, _ := strings.CutSuffix(v, "%")
	bp, err := field.Decimal(&yaml.Node{Line: n.Line, Column: n.Column, Kind: yaml.ScalarNode, Value: strings.TrimSpace(pct)}, name, 2)
	if err != nil {
		return 0, err
	}
	if bp > 10000 {
		return 0, errAt(n, "%s %s: want a percent from 0 to 100", name, v)
	}
	return bp, nil
}

func probation(n *yaml.Node) (*Probation, error) {
	m, err := fields(n, "seconds", "min_inferences", "max_error_permille", "max_p99_us")
	if err != nil {
		return nil, err
	}
	pr := &Probation{}
	if pr.Seconds, err = optionalUint(m["seconds"], "seconds", 60); err != nil {
		return nil, err
	}
	if pr.MinInferences, err = optionalUint(m["min_inferences"], "min_inferences", 20); err != nil {
		return nil, err
	}
	if pr.MaxErrorPermille, err = optionalUintPtr(m["max_error_permille"], "max_error_permille"); err != nil {
		return nil, err
	}
	if pr.MaxErrorPermille != nil && *pr.MaxErrorPermille > 1000 {
		return nil, errAt(m["max_error_permille"], "max_error_permille %d is over 1000", *pr.MaxErrorPermille)
	}
	if pr.MaxP99Micros, err = optionalUintPtr(m["max_p99_us"], "max_p99_us"); err != nil {
		return nil, err
	}
	return pr, nil
}

// checkBehaviour checks a simulated model's header after the magic word
// by the runtime's own rules (package simmodel, docs/simulator.md): known
// keys, each at most once, numbers in range, at most one metric.
func checkBehaviour(b string) error {
	if _, _, err := simmodel.ParseHeader([]byte(simmodel.Magic + " " + b)); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), simmodel.ErrHeader.Error()+": "))
	}
	return nil
}

func (p *parser) deployments(n *yaml.Node) error {
	items, err := p.list(n, "deployments", false, "")
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := fields(it, "id", "at", "model", "cohort", "waves", "gates", "on_failure", "node_timeout", "max_concurrent")
		if err != nil {
			return err
		}
		var d Deployment
		if d.ID, err = requiredString(it, m["id"], "deployment id"); err != nil {
			return err
		}
		if !protocol.ValidID(d.ID) {
			return errAt(m["id"], "deployment id %q does not match [A-Za-z0-9._-]{1,64}", d.ID)
		}
		if p.s.Deployment(d.ID) != nil {
			return errAt(m["id"], "deployment %s is defined twice", d.ID)
		}
		if d.At, err = p.at(m["at"], false); err != nil {
			return err
		}
		if d.Model, err = requiredString(it, m["model"], "deployment "+d.ID+": model"); err != nil {
			return err
		}
		if p.s.Model(d.Model) == nil {
			return errAt(m["model"], "deployment %s: no model named %q", d.ID, d.Model)
		}
		if d.Cohort, err = cohortExpr(m["cohort"]); err != nil {
			return err
		}
		w, ok := m["waves"]
		if !ok {
			return errAt(it, "deployment %s: waves is required, e.g. waves: [{percent: 10, bake: 2m}, {percent: 100}]", d.ID)
		}
		if d.Waves, err = waves(w); err != nil {
			return err
		}
		if g, ok := m["gates"]; ok && yamlfield.IsSet(g) {
			if d.Gates, err = gates(g); err != nil {
				return err
			}
		}
		switch v, err := optionalString(m["on_failure"], "on_failure"); {
		case err != nil:
			return err
		case v == "" || v == "pause":
			d.OnFailure = "pause"
		case v == "rollback":
			d.OnFailure = v
		default:
			return errAt(m["on_failure"], "on_failure %q: want pause or rollback", v)
		}
		if d.NodeTimeout, err = optionalDuration(m["node_timeout"], "node_timeout", 30*time.Minute); err != nil {
			return err
		}
		if d.NodeTimeout < time.Second || d.NodeTimeout%time.Second != 0 {
			return errAt(m["node_timeout"], "node_timeout %v: want a positive whole number of seconds", d.NodeTimeout)
		}
		if d.MaxConcurrent, err = optionalUint(m["max_concurrent"], "max_concurrent", 20); err != nil {
			return err
		}
		if d.MaxConcurrent == 0 {
			return errAt(m["max_concurrent"], "max_concurrent must be at least 1")
		}
		p.s.Deployments = append(p.s.Deployments, d)
	}
	return nil
}

// at parses an at: field, a time within the scenario's duration.
func (p *parser) at(n *yaml.Node, required bool) (time.Duration, error) {
	if !yamlfield.IsSet(n) {
		if required {
			return 0, errAt(p.top, "at is required")
		}
		return 0, nil
	}
	d, err := field.Duration(n, "at")
	if err != nil {
		return 0, err
	}
	if d > p.s.Duration {
		return 0, errAt(n, "at %v is after the end of the scenario (duration %v)", d, p.s.Duration)
	}
	return d, nil
}

func cohortExpr(n *yaml.Node) (string, error) {
	c, err := optionalString(n, "cohort")
	if err != nil || c == "" {
		return "*", err
	}
	if _, err := cohort.Parse(c); err != nil {
		return "", errAt(n, "cohort %q: %v", c, err)
	}
	return c, nil
}

func waves(n *yaml.Node) ([]Wave, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, errAt(n, "waves: want a non-empty list of {percent, bake}")
	}
	var out []Wave
	var prev uint64
	for i, c := range n.Content {
		m, err := fields(c, "percent", "bake")
		if err != nil {
			return nil, err
		}
		pn, ok := m["percent"]
		if !ok || !yamlfield.IsSet(pn) {
			return nil, errAt(c, "wave %d: percent is required", i+1)
		}
		bp, err := field.Decimal(pn, "percent", 2)
		if err != nil {
			return nil, err
		}
		if bp == 0 || bp > 10000 {
			return nil, errAt(pn, "wave %d: percent %s: want more than 0 and at most 100", i+1, pn.Value)
		}
		if bp <= prev {
			return nil, errAt(pn, "wave %d: percent %s is not above the previous wave's (percents are cumulative)", i+1, pn.Value)
		}
		prev = bp
		bake, err := optionalDuration(m["bake"], "bake", 0)
		if err != nil {
			return nil, err
		}
		if bake%time.Second != 0 {
			return nil, errAt(m["bake"], "bake %v: want whole seconds", bake)
		}
		out = append(out, Wave{BasisPoints: bp, BakeSeconds: uint64(bake / time.Second)})
	}
	if prev != 10000 {
		return nil, errAt(n.Content[len(n.Content)-1], "the last wave must reach percent 100")
	}
	return out, nil
}

func gates(n *yaml.Node) (Gates, error) {
	var g Gates
	m, err := fields(n, "max_failed", "max_error_rate", "max_latency_p99", "min_reports", "max_boot_loops", "metrics")
	if err != nil {
		return g, err
	}
	if g.MaxFailed, err = optionalUintPtr(m["max_failed"], "max_failed"); err != nil {
		return g, err
	}
	if x := m["max_error_rate"]; yamlfield.IsSet(x) {
		v, err := field.Decimal(x, "max_error_rate", 3)
		if err != nil {
			return g, err
		}
		if v > 1000 {
			return g, errAt(x, "max_error_rate %s is a fraction and cannot exceed 1", x.Value)
		}
		g.MaxErrorPermille = &v
	}
	if x := m["max_latency_p99"]; yamlfield.IsSet(x) {
		d, err := field.Duration(x, "max_latency_p99")
		if err != nil {
			return g, err
		}
		if d%time.Microsecond != 0 {
			return g, errAt(x, "max_latency_p99 %v: want whole microseconds", d)
		}
		v := uint64(d / time.Microsecond)
		g.MaxLatencyP99Micros = &v
	}
	if g.MinReports, err = optionalUintPtr(m["min_reports"], "min_reports"); err != nil {
		return g, err
	}
	if g.MaxBootLoops, err = optionalUintPtr(m["max_boot_loops"], "max_boot_loops"); err != nil {
		return g, err
	}
	if x := m["metrics"]; yamlfield.IsSet(x) {
		if x.Kind != yaml.MappingNode {
			return g, errAt(x, "metrics: want a mapping of metric name to maximum, as {low_confidence_permille: 50}")
		}
		g.Metrics = map[string]int64{}
		for i := 0; i+1 < len(x.Content); i += 2 {
			k, v := x.Content[i], x.Content[i+1]
			if !protocol.ValidLabelKey(k.Value) {
				return g, errAt(k, "metric name %q does not match [a-z0-9_.-]{1,32}", k.Value)
			}
			b, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || v.Kind != yaml.ScalarNode {
				return g, errAt(v, "metric %s: want a whole number", k.Value)
			}
			g.Metrics[k.Value] = b
		}
	}
	return g, nil
}

func (p *parser) faults(n *yaml.Node) error {
	items, err := p.list(n, "faults", false, "")
	if err != nil {
		return err
	}
	for _, it := range items {
		m, err := fields(it, "at", "kind", "for", "nodes")
		if err != nil {
			return err
		}
		var f Fault
		if f.Kind, err = requiredString(it, m["kind"], "fault kind"); err != nil {
			return err
		}
		var outage, selects bool
		switch f.Kind {
		case FaultPowerCut, FaultReboot:
			selects = true
		case FaultLinkOutage:
			outage, selects = true, true
		case FaultBrokerOutage:
			outage = true
		case FaultGatewayRestart:
		default:
			return errAt(m["kind"], "fault kind %q: want power-cut, gateway-restart, broker-outage, link-outage or reboot", f.Kind)
		}
		if !yamlfield.IsSet(m["at"]) {
			return errAt(it, "%s: at is required", f.Kind)
		}
		if f.At, err = p.at(m["at"], true); err != nil {
			return err
		}
		switch fn := m["for"]; {
		case outage && !yamlfield.IsSet(fn):
			return errAt(it, "%s: for is required: how long the outage lasts, such as for: 30s", f.Kind)
		case outage:
			if f.For, err = field.Duration(fn, "for"); err != nil {
				return err
			}
			if f.For <= 0 {
				return errAt(fn, "for must be positive")
			}
		case yamlfield.IsSet(fn):
			return errAt(fn, "%s: for applies only to broker-outage and link-outage", f.Kind)
		}
		switch nn := m["nodes"]; {
		case selects && !yamlfield.IsSet(nn):
			return errAt(it, "%s: nodes is required: a share such as 10%% or a number of nodes", f.Kind)
		case selects:
			if f.Nodes, err = p.selector(nn); err != nil {
				return err
			}
		case yamlfield.IsSet(nn):
			return errAt(nn, "%s: nodes applies only to power-cut, link-outage and reboot", f.Kind)
		}
		p.s.Faults = append(p.s.Faults, f)
	}
	return nil
}

func (p *parser) selector(n *yaml.Node) (Selector, error) {
	v, err := field.Scalar(n, "nodes")
	if err != nil {
		return Selector{}, err
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		bp, err := field.Decimal(&yaml.Node{Line: n.Line, Kind: yaml.ScalarNode, Value: strings.TrimSpace(pct)}, "nodes", 2)
		if err != nil {
			return Selector{}, err
		}
		if bp > 10000 {
			return Selector{}, errAt(n, "nodes %s: want a percent from 0 to 100", v)
		}
		return Selector{Percent: bp}, nil
	}
	c, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return Selector{}, errAt(n, "nodes %q: want a share such as 10%% or a number of nodes", v)
	}
	if total := p.s.Nodes(); int(c) > total {
		return Selector{}, errAt(n, "nodes %d: the fleet has only %d nodes", c, total)
	}
	return Selector{Count: int(c)}, nil
}

// hasFault reports whether the scenario injects a fault of that kind.
func (p *parser) hasFault(kind string) bool {
	for _, f := range p.s.Faults {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

var phases = []string{"pending", "running", "paused", "completed", "aborted", "rolled-back", "superseded"}

func (p *parser) expectations(n *yaml.Node) error {
	items, err := p.list(n, "expect", true, "expect: [{kind: all-run, model: v2}]")
	if err != nil {
		return err
	}
	names := map[string]int{}
	for _, it := range items {
		m, err := fields(it, "name", "kind", "cohort", "model", "deployment", "phase", "max_wave", "baseline", "max", "min")
		if err != nil {
			return err
		}
		var e Expectation
		if e.Kind, err = requiredString(it, m["kind"], "expectation kind"); err != nil {
			return err
		}
		var allowed []string
		switch e.Kind {
		case ExpectAllRun, ExpectNoneRun:
			allowed = []string{"cohort", "model"}
		case ExpectNoUnbootable:
			allowed = []string{"cohort"}
		case ExpectRollout:
			allowed = []string{"deployment", "phase", "max_wave"}
		case ExpectHealthDelivered:
		case ExpectProvisioned:
			if p.s.Provision != ProvisionBLE {
				return errAt(m["kind"], "expectation provisioned needs provision: ble (nodes provisioned over BLE)")
			}
			allowed = []string{"cohort"}
		case ExpectLinkRecovered:
			if !p.hasFault(FaultLinkOutage) {
				return errAt(m["kind"], "expectation link-recovered needs a link-outage fault")
			}
			allowed = []string{"cohort"}
		case ExpectTookDelta:
			allowed = []string{"cohort", "model", "min"}
		case ExpectAirRatio:
			allowed = []string{"cohort", "baseline", "max"}
		default:
			return errAt(m["kind"], "expectation kind %q: want all-run, none-run, no-unbootable, rollout, health-delivered, provisioned, link-recovered, took-delta or air-ratio", e.Kind)
		}
		for i := 0; i+1 < len(it.Content); i += 2 {
			k := it.Content[i].Value
			if k != "name" && k != "kind" && !contains(allowed, k) {
				return errAt(it.Content[i], "%s does not apply to an expectation of kind %s", k, e.Kind)
			}
		}
		if e.Name, err = optionalString(m["name"], "name"); err != nil {
			return err
		}
		if contains(allowed, "cohort") {
			if e.Cohort, err = cohortExpr(m["cohort"]); err != nil {
				return err
			}
		}
		if contains(allowed, "model") {
			if e.Model, err = requiredString(it, m["model"], e.Kind+": model"); err != nil {
				return err
			}
			if p.s.Model(e.Model) == nil {
				return errAt(m["model"], "%s: no model named %q", e.Kind, e.Model)
			}
		}
		if e.Kind == ExpectTookDelta && yamlfield.IsSet(m["min"]) {
			if e.MinPercent, err = percent(m["min"], "min"); err != nil {
				return err
			}
		}
		if e.Kind == ExpectAirRatio {
			if !yamlfield.IsSet(m["baseline"]) || !yamlfield.IsSet(m["max"]) {
				return errAt(it, "air-ratio: want cohort, baseline and max, e.g. {kind: air-ratio, cohort: \"deltas:on\", baseline: \"deltas:off\", max: 25%%}")
			}
			if e.Baseline, err = cohortExpr(m["baseline"]); err != nil {
				return err
			}
			if e.MaxPercent, err = percent(m["max"], "max"); err != nil {
				return err
			}
		}
		if e.Kind == ExpectRollout {
			if e.Deployment, err = requiredString(it, m["deployment"], "rollout: deployment"); err != nil {
				return err
			}
			d := p.s.Deployment(e.Deployment)
			if d == nil {
				return errAt(m["deployment"], "rollout: no deployment with id %q", e.Deployment)
			}
			if e.Phase, err = optionalString(m["phase"], "phase"); err != nil {
				return err
			}
			if e.Phase != "" && !contains(phases, e.Phase) {
				return errAt(m["phase"], "phase %q: want one of %s", e.Phase, strings.Join(phases, ", "))
			}
			mw, err := optionalUint(m["max_wave"], "max_wave", 0)
			if err != nil {
				return err
			}
			if yamlfield.IsSet(m["max_wave"]) && (mw < 1 || mw > uint64(len(d.Waves))) {
				return errAt(m["max_wave"], "max_wave %d: deployment %s has waves 1 to %d", mw, d.ID, len(d.Waves))
			}
			e.MaxWave = int(mw)
			if e.Phase == "" && e.MaxWave == 0 {
				return errAt(it, "rollout: want phase, max_wave or both")
			}
		}
		if e.Name == "" {
			e.Name = defaultName(p.s, e)
		}
		if prev, dup := names[e.Name]; dup {
			return errAt(it, "expectation %q repeats the one at line %d; give one a name:", e.Name, prev)
		}
		names[e.Name] = it.Line
		p.s.Expect = append(p.s.Expect, e)
	}
	return nil
}
