package scenario

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteSummary writes a readable report of a run: the scenario, the seed
// and how to replay it, simulated and real time, how many nodes run each
// model, each rollout's phase, highest wave, touched and failed nodes, the
// health reports, and one PASS or FAIL line per outcome. Write errors are
// ignored: the writer is a terminal or a buffer.
func WriteSummary(w io.Writer, s *Scenario, r *Result, outs []Outcome) {
	fmt.Fprintf(w, "scenario  %s", s.Name)
	if s.Description != "" {
		fmt.Fprintf(w, " — %s", s.Description)
	}
	fmt.Fprintf(w, "\nseed      %d (replay with --seed %d)\n", r.Seed, r.Seed)
	end := "all deployments ended"
	if !r.Finished {
		end = "deployments still open at the time limit"
	}
	fmt.Fprintf(w, "time      %v simulated in %v real (time scale %g), %s\n",
		r.SimElapsed, r.RealElapsed.Round(time.Millisecond), s.TimeScale, end)
	fmt.Fprintf(w, "nodes     %d\n", len(r.Nodes))
	if c := r.Resources; c != nil {
		cores := 0.0
		if r.RealElapsed > 0 {
			cores = c.CPU.Seconds() / r.RealElapsed.Seconds()
		}
		fmt.Fprintf(w, "cost      CPU %v (%.2f cores), peak RSS %s; per node %s heap, %s RSS; %d file descriptors, %d goroutines\n",
			c.CPU.Round(10*time.Millisecond), cores, bytesText(c.PeakRSS), bytesText(c.HeapPerNode), bytesText(c.RSSPerNode), c.FDs, c.Goroutines)
	}
	if s.Transport == TransportDTLS {
		fmt.Fprintln(w, "transport CoAP over DTLS 1.2 only, a pre-shared key per node")
	}
	if s.Provision == ProvisionBLE {
		done, entries := 0, 0
		for _, n := range r.Nodes {
			if n.Provisioned {
				done++
			}
			entries += len(n.Audit)
		}
		fmt.Fprintf(w, "provision %d of %d nodes over BLE in %v real, %d audit entries\n",
			done, len(r.Nodes), r.ProvisionElapsed.Round(time.Millisecond), entries)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tversion\tnodes\tconfirmed\ttrial")
	for _, c := range modelCounts(s, r) {
		label := c.Name
		if label == "" {
			label = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", label, c.Version, c.Nodes, c.Confirmed, c.Trial)
	}
	tw.Flush()

	if len(r.Rollouts) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "rollout\tmodel\tphase\tmax wave\ttouched\tsucceeded\tfailed")
		for i := range r.Rollouts {
			ro := &r.Rollouts[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n",
				ro.ID, ro.Model, ro.Phase, waveOf(s, ro), ro.Touched, ro.Succeeded, ro.Failed)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nhealth    %d accepted, %d delivered, %d duplicates\n\n",
		r.HealthAccepted, r.HealthDelivered, r.HealthDuplicates)
	passed := 0
	for _, o := range outs {
		verdict := "FAIL"
		if o.Passed {
			verdict = "PASS"
			passed++
		}
		fmt.Fprintf(w, "%s %s — %s\n", verdict, o.Name, o.Detail)
	}
	fmt.Fprintf(w, "\n%d of %d expectations passed\n", passed, len(outs))
}

// modelCount is how many nodes run one model at the end of a run.
type modelCount struct {
	Name      string `json:"model"` // "" for nodes that run none
	Version   string `json:"version,omitempty"`
	Nodes     int    `json:"nodes"`
	Confirmed int    `json:"confirmed"`
	Trial     int    `json:"trial"`
}

// modelCounts counts the nodes per model: every model of the scenario in
// its order, then any other name the nodes report, then "" (no model)
// when some node runs none.
func modelCounts(s *Scenario, r *Result) []modelCount {
	var out []modelCount
	index := map[string]int{}
	add := func(name string) *modelCount {
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			c := modelCount{Name: name}
			if m := s.Model(name); m != nil {
				c.Version = m.Version
			}
			out = append(out, c)
		}
		return &out[i]
	}
	for _, m := range s.Models {
		add(m.Name)
	}
	for _, n := range r.Nodes {
		c := add(n.Model)
		c.Nodes++
		switch n.State {
		case StateConfirmed:
			c.Confirmed++
		case StateTrial:
			c.Trial++
		}
	}
	if i, ok := index[""]; ok && out[i].Nodes == 0 {
		out = append(out[:i], out[i+1:]...)
	}
	return out
}

// junitSuite is the root element of the JUnit XML: one test suite.
type junitSuite struct {
	XMLName    xml.Name        `xml:"testsuite"`
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  *junitText      `xml:"system-out"`
}

// junitText is text kept as CDATA, so that the summary stays readable.
type junitText struct {
	Text string `xml:",cdata"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the outcomes as JUnit XML, the form Jenkins and GitLab
// read: one <testsuite> named after the scenario, whose time is the real
// time of the run in seconds, with a <properties> holding the seed, the
// time scale and the simulated time, one <testcase> per outcome (classname
// "edgeota.sim.<scenario>", time 0: expectations are judged at the end),
// a <failure> with the detail for each failed one, and the summary of
// [WriteSummary] as <system-out>.
func WriteJUnit(w io.Writer, s *Scenario, r *Result, outs []Outcome) error {
	var summary bytes.Buffer
	WriteSummary(&summary, s, r, outs)
	suite := junitSuite{
		Name:  s.Name,
		Tests: len(outs),
		Time:  seconds(r.RealElapsed),
		Properties: []junitProperty{
			{Name: "seed", Value: strconv.FormatUint(r.Seed, 10)},
			{Name: "time_scale", Value: strconv.FormatFloat(s.TimeScale, 'g', -1, 64)},
			{Name: "sim_elapsed", Value: r.SimElapsed.String()},
			{Name: "finished", Value: strconv.FormatBool(r.Finished)},
			{Name: "transport", Value: s.Transport},
			{Name: "provision", Value: s.Provision},
		},
		SystemOut: &junitText{Text: summary.String()},
	}
	for _, o := range outs {
		c := junitCase{Name: o.Name, Classname: "edgeota.sim." + s.Name, Time: seconds(0)}
		if !o.Passed {
			suite.Failures++
			c.Failure = &junitFailure{Message: o.Detail, Type: o.Expectation.Kind, Text: o.Detail}
		}
		suite.Cases = append(suite.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(suite); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// seconds formats d as JUnit does: seconds with 3 decimals.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// jsonReport is the document [WriteJSON] writes.
// bytesText is n bytes in KiB or MiB, as a summary line shows them.
func bytesText(n int64) string {
	if n >= 10<<20 || n <= -10<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}

type jsonReport struct {
	Scenario         string         `json:"scenario"`
	Description      string         `json:"description,omitempty"`
	Seed             string         `json:"seed"`
	Passed           bool           `json:"passed"`
	Finished         bool           `json:"finished"`
	TimeScale        float64        `json:"time_scale"`
	SimElapsed       float64        `json:"sim_elapsed_seconds"`
	RealElapsed      float64        `json:"real_elapsed_seconds"`
	Transport        string         `json:"transport"`
	Provision        string         `json:"provision"`
	ProvisionElapsed float64        `json:"provision_elapsed_seconds,omitempty"`
	Models           []modelCount   `json:"models"`
	Rollouts         []jsonRollout  `json:"rollouts"`
	Health           jsonHealth     `json:"health"`
	Resources        *jsonResources `json:"resources,omitempty"`
	Expectations     []jsonOutcome  `json:"expectations"`
	Nodes            []jsonNodeView `json:"nodes"`
}

type jsonResources struct {
	CPU         float64 `json:"cpu_seconds"`
	HeapPerNode int64   `json:"heap_bytes_per_node"`
	RSSPerNode  int64   `json:"rss_bytes_per_node"`
	PeakRSS     int64   `json:"peak_rss_bytes"`
	FDs         int     `json:"file_descriptors"`
	Goroutines  int     `json:"goroutines"`
}

type jsonRollout struct {
	ID        string `json:"id"`
	Model     string `json:"model"`
	Phase     string `json:"phase"`
	MaxWave   int    `json:"max_wave"`
	Waves     int    `json:"waves"`
	Touched   int    `json:"touched"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
}

type jsonHealth struct {
	Accepted   int `json:"accepted"`
	Delivered  int `json:"delivered"`
	Duplicates int `json:"duplicates"`
}

type jsonOutcome struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

type jsonNodeView struct {
	ID          string            `json:"id"`
	Labels      map[string]string `json:"labels"`
	Model       string            `json:"model"`
	State       string            `json:"state"`
	Boots       uint64            `json:"boots"`
	PowerCuts   int               `json:"power_cuts"`
	Unbootable  int               `json:"unbootable"`
	Provisioned bool              `json:"provisioned,omitempty"`
	Registered  map[string]string `json:"registered_labels,omitempty"`
	Audit       []jsonAudit       `json:"audit,omitempty"`
	// LinkOutages, OutageDropped and HeardAfterOutage are of a node a
	// link-outage struck.
	LinkOutages      int    `json:"link_outages,omitempty"`
	OutageDropped    uint64 `json:"outage_dropped,omitempty"`
	HeardAfterOutage int    `json:"heard_after_outage,omitempty"`
}

type jsonAudit struct {
	Actor         string            `json:"actor"`
	Labels        map[string]string `json:"labels"`
	Authenticated bool              `json:"authenticated"`
}

// WriteJSON writes the run as one JSON document, for scripts: what
// [WriteSummary] shows, with every expectation's kind and every node. The
// seed is a decimal string (it may exceed what a JSON number holds
// exactly); durations are in seconds; "passed" is true when every
// expectation passed.
func WriteJSON(w io.Writer, s *Scenario, r *Result, outs []Outcome) error {
	rep := jsonReport{Scenario: s.Name, Description: s.Description, Seed: strconv.FormatUint(r.Seed, 10),
		Passed: Passed(outs), Finished: r.Finished, TimeScale: s.TimeScale,
		SimElapsed: r.SimElapsed.Seconds(), RealElapsed: r.RealElapsed.Seconds(),
		Transport: s.Transport, Provision: s.Provision, ProvisionElapsed: r.ProvisionElapsed.Seconds(),
		Models: modelCounts(s, r), Rollouts: []jsonRollout{}, Expectations: []jsonOutcome{}, Nodes: []jsonNodeView{},
		Health: jsonHealth{Accepted: r.HealthAccepted, Delivered: r.HealthDelivered, Duplicates: r.HealthDuplicates}}
	if c := r.Resources; c != nil {
		rep.Resources = &jsonResources{CPU: c.CPU.Seconds(), HeapPerNode: c.HeapPerNode, RSSPerNode: c.RSSPerNode,
			PeakRSS: c.PeakRSS, FDs: c.FDs, Goroutines: c.Goroutines}
	}
	for _, ro := range r.Rollouts {
		jr := jsonRollout{ID: ro.ID, Model: ro.Model, Phase: ro.Phase, MaxWave: ro.MaxWave,
			Touched: ro.Touched, Succeeded: ro.Succeeded, Failed: ro.Failed}
		if d := s.Deployment(ro.ID); d != nil {
			jr.Waves = len(d.Waves)
		}
		rep.Rollouts = append(rep.Rollouts, jr)
	}
	for _, o := range outs {
		rep.Expectations = append(rep.Expectations, jsonOutcome{Name: o.Name, Kind: o.Expectation.Kind, Passed: o.Passed, Detail: o.Detail})
	}
	for _, n := range r.Nodes {
		v := jsonNodeView{ID: n.ID, Labels: n.Labels, Model: n.Model, State: n.State, Boots: n.Boots, PowerCuts: n.PowerCuts,
			Unbootable: n.Unbootable, Provisioned: n.Provisioned, Registered: n.Registered,
			LinkOutages: n.LinkOutages, OutageDropped: n.OutageDropped, HeardAfterOutage: n.HeardAfterOutage}
		if v.Labels == nil {
			v.Labels = map[string]string{}
		}
		for _, a := range n.Audit {
			v.Audit = append(v.Audit, jsonAudit(a))
		}
		rep.Nodes = append(rep.Nodes, v)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
