package scenario

import (
	"bytes"
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
	type count struct{ all, confirmed, trial int }
	counts := map[string]*count{}
	var order []string
	add := func(name string) {
		if counts[name] == nil {
			counts[name] = &count{}
			order = append(order, name)
		}
	}
	for _, m := range s.Models {
		add(m.Name)
	}
	for _, n := range r.Nodes {
		add(n.Model)
		c := counts[n.Model]
		c.all++
		switch n.State {
		case StateConfirmed:
			c.confirmed++
		case StateTrial:
			c.trial++
		}
	}
	for _, name := range order {
		c := counts[name]
		version, label := "", name
		if m := s.Model(name); m != nil {
			version = m.Version
		}
		if name == "" {
			if c.all == 0 {
				continue
			}
			label = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", label, version, c.all, c.confirmed, c.trial)
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
