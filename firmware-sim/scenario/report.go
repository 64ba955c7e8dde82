package scenario

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"edgeota/firmware-sim/radio"
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
		fmt.Fprintln(tw, "rollout\tmodel\tphase\tmax wave\ttouched\tsucceeded\tfailed\ttime")
		for i := range r.Rollouts {
			ro := &r.Rollouts[i]
			took := "-"
			if ro.Elapsed > 0 {
				took = ro.Elapsed.Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n",
				ro.ID, ro.Model, ro.Phase, waveOf(s, ro), ro.Touched, ro.Succeeded, ro.Failed, took)
		}
		tw.Flush()
	}

	writeRadio(w, s, r)

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

// writeRadio writes the radio lines of the summary: the link, what all
// links put on air each way, and per fleet group the nodes' download time
// and airtime.
// Without a link and with nothing on air (a result not from the fleet
// simulator) it writes nothing.
func writeRadio(w io.Writer, s *Scenario, r *Result) {
	l := s.Link
	var total radio.Stats
	for _, n := range r.Nodes {
		total.Up = total.Up.Add(n.Link.Up)
		total.Down = total.Down.Add(n.Link.Down)
	}
	if l == (Link{}) && total == (radio.Stats{}) {
		return
	}
	clk := "real time"
	if l.SimulatedTime() {
		clk = "simulated time"
	}
	name := l.Profile
	if name == "" {
		name = "custom"
	}
	rate := "unlimited"
	if l.Bandwidth > 0 {
		rate = fmt.Sprintf("%d bit/s", l.Bandwidth)
	}
	fmt.Fprintf(w, "\nradio     %s link in %s: %s, %d hop(s) of %v + up to %v, loss %g, frame loss %g\n",
		name, clk, rate, max(l.Hops, 1), l.Latency, l.Jitter, l.Loss, l.FrameLoss)
	for _, d := range []struct {
		name string
		st   radio.DirStats
	}{{"up", total.Up}, {"down", total.Down}} {
		fmt.Fprintf(w, "  %-4s    %d datagrams (%s), %d dropped; %d frames, %s on air, %v airtime\n", d.name,
			d.st.In, bytesText(int64(d.st.BytesIn)), d.st.Dropped, d.st.Frames, bytesText(int64(d.st.AirBytes)), d.st.Airtime.Round(time.Millisecond))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "group\tnodes\tdownloaded\tdeltas\tdownload median\tdownload max\tlast confirmed\tairtime per node\ton air per node\tfetched per node")
	for _, g := range groupAir(s, r) {
		median, most, last := "-", "-", "-"
		if g.Downloaded > 0 {
			median, most = g.Median.Round(100*time.Millisecond).String(), g.Max.Round(100*time.Millisecond).String()
		}
		if g.Confirmed > 0 {
			last = g.Confirmed.Round(time.Second).String()
		}
		deltas := fmt.Sprint(g.Deltas)
		if g.NoDeltas {
			deltas = "off"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", g.Name, g.Nodes, g.Downloaded, deltas, median, most, last,
			g.Airtime.Round(time.Millisecond), bytesText(g.AirBytes), bytesText(g.Fetched))
	}
	tw.Flush()
}

// groupStats is what the nodes of one fleet group took: their downloads
// (simulated time), when the last of them confirmed an update (simulated
// time since the start), and their links' airtime and bytes on air both
// ways, per node.
type groupStats struct {
	Name       string        `json:"group"`
	Nodes      int           `json:"nodes"`
	Downloaded int           `json:"downloaded"`
	Median     time.Duration `json:"-"`
	Max        time.Duration `json:"-"`
	Confirmed  time.Duration `json:"-"`
	Airtime    time.Duration `json:"-"`
	AirBytes   int64         `json:"air_bytes_per_node"`
	// NoDeltas is the group's deltas: false; Deltas how many of its
	// nodes took their latest update as a delta, Fallbacks how many
	// abandoned one for the full image.
	NoDeltas  bool `json:"deltas_off,omitempty"`
	Deltas    int  `json:"deltas"`
	Fallbacks int  `json:"fallbacks"`
	// Fetched is the payload bytes fetched from the gateway per node,
	// deltas and images (the nodes' status events, transfer key 3).
	Fetched int64 `json:"fetched_bytes_per_node"`
}

// groupAir sums the nodes of each fleet group: r.Nodes are in fleet
// order, each group's Count nodes after the previous group's.
func groupAir(s *Scenario, r *Result) []groupStats {
	var out []groupStats
	i := 0
	for _, g := range s.Fleet {
		gs := groupStats{Name: groupName(g), NoDeltas: g.NoDeltas}
		var took []time.Duration
		var air time.Duration
		var bytes, fetched uint64
		for ; i < len(r.Nodes) && gs.Nodes < g.Count; i++ {
			n := &r.Nodes[i]
			gs.Nodes++
			air += n.Link.Up.Airtime + n.Link.Down.Airtime
			bytes += n.Link.Up.AirBytes + n.Link.Down.AirBytes
			fetched += n.Fetched
			if n.Transfer == "delta" {
				gs.Deltas++
			}
			if n.Fallback != "" {
				gs.Fallbacks++
			}
			if n.Download > 0 {
				took = append(took, n.Download)
			}
			gs.Confirmed = max(gs.Confirmed, n.Confirmed)
		}
		if gs.Nodes > 0 {
			gs.Airtime = air / time.Duration(gs.Nodes)
			gs.AirBytes = int64(bytes) / int64(gs.Nodes)
			gs.Fetched = int64(fetched) / int64(gs.Nodes)
		}
		if gs.Downloaded = len(took); len(took) > 0 {
			slices.Sort(took)
			gs.Median, gs.Max = took[len(took)/2], took[len(took)-1]
		}
		out = append(out, gs)
	}
	return out
}

// groupName names a fleet group by its labels, "{hw:rev2 site:a}", or
// "{}" for none.
func groupName(g Group) string {
	keys := slices.Sorted(maps.Keys(g.Labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + g.Labels[k]
	}
	return "{" + strings.Join(parts, " ") + "}"
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
	Radio            jsonRadio      `json:"radio"`
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

// jsonRadio is the link and what all links carried.
type jsonRadio struct {
	Profile       string      `json:"profile"` // "" for a link without one
	SimulatedTime bool        `json:"simulated_time"`
	Bandwidth     int         `json:"bandwidth_bps"`
	Hops          int         `json:"hops"`
	Up            jsonDir     `json:"up"`
	Down          jsonDir     `json:"down"`
	Groups        []jsonGroup `json:"groups"`
}

// jsonDir is what one direction of one link, or of all, carried.
type jsonDir struct {
	Datagrams uint64  `json:"datagrams"`
	Bytes     uint64  `json:"bytes"`
	Delivered uint64  `json:"delivered"`
	Dropped   uint64  `json:"dropped"`
	Frames    uint64  `json:"frames"`
	AirBytes  uint64  `json:"air_bytes"`
	Airtime   float64 `json:"airtime_seconds"`
}

func dirJSON(d radio.DirStats) jsonDir {
	return jsonDir{Datagrams: d.In, Bytes: d.BytesIn, Delivered: d.Delivered, Dropped: d.Dropped,
		Frames: d.Frames, AirBytes: d.AirBytes, Airtime: d.Airtime.Seconds()}
}

// jsonGroup is one fleet group's downloads and airtime.
type jsonGroup struct {
	groupStats
	Median float64 `json:"download_median_seconds"`
	Max    float64 `json:"download_max_seconds"`
	// Confirmed is 0 when no node of the group confirmed an update.
	Confirmed float64 `json:"last_confirmed_seconds"`
	Airtime   float64 `json:"airtime_seconds_per_node"`
}

// jsonLink is what a node's link carried each way.
type jsonLink struct {
	Up   jsonDir `json:"up"`
	Down jsonDir `json:"down"`
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
	// Elapsed is 0 while the rollout has not ended.
	Elapsed float64 `json:"elapsed_seconds"`
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
	LinkOutages      int      `json:"link_outages,omitempty"`
	OutageDropped    uint64   `json:"outage_dropped,omitempty"`
	HeardAfterOutage int      `json:"heard_after_outage,omitempty"`
	Link             jsonLink `json:"link"`
	// Download is 0 when no download finished, Confirmed when the node
	// confirmed no update.
	Download  float64 `json:"download_seconds"`
	Confirmed float64 `json:"confirmed_seconds"`
	// Transfer is how the node fetched its latest update ("delta",
	// "full", "" for none), Fetched the payload bytes of its updates,
	// Fallback why it abandoned a delta.
	Transfer string `json:"transfer,omitempty"`
	Fetched  uint64 `json:"fetched_bytes"`
	Fallback string `json:"fallback,omitempty"`
}

type jsonAudit struct {
	Actor         string            `json:"actor"`
	Labels        map[string]string `json:"labels"`
	Authenticated bool              `json:"authenticated"`
}

// radioJSON is the link of s and what the links of r carried.
func radioJSON(s *Scenario, r *Result) jsonRadio {
	var up, down radio.DirStats
	for _, n := range r.Nodes {
		up, down = up.Add(n.Link.Up), down.Add(n.Link.Down)
	}
	out := jsonRadio{Profile: s.Link.Profile, SimulatedTime: s.Link.SimulatedTime(), Bandwidth: s.Link.Bandwidth,
		Hops: max(s.Link.Hops, 1), Up: dirJSON(up), Down: dirJSON(down), Groups: []jsonGroup{}}
	for _, g := range groupAir(s, r) {
		out.Groups = append(out.Groups, jsonGroup{groupStats: g, Median: g.Median.Seconds(), Max: g.Max.Seconds(),
			Confirmed: g.Confirmed.Seconds(), Airtime: g.Airtime.Seconds()})
	}
	return out
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
			Touched: ro.Touched, Succeeded: ro.Succeeded, Failed: ro.Failed, Elapsed: ro.Elapsed.Seconds()}
		if d := s.Deployment(ro.ID); d != nil {
			jr.Waves = len(d.Waves)
		}
		rep.Rollouts = append(rep.Rollouts, jr)
	}
	rep.Radio = radioJSON(s, r)
	for _, o := range outs {
		rep.Expectations = append(rep.Expectations, jsonOutcome{Name: o.Name, Kind: o.Expectation.Kind, Passed: o.Passed, Detail: o.Detail})
	}
	for _, n := range r.Nodes {
		v := jsonNodeView{ID: n.ID, Labels: n.Labels, Model: n.Model, State: n.State, Boots: n.Boots, PowerCuts: n.PowerCuts,
			Unbootable: n.Unbootable, Provisioned: n.Provisioned, Registered: n.Registered,
			LinkOutages: n.LinkOutages, OutageDropped: n.OutageDropped, HeardAfterOutage: n.HeardAfterOutage,
			Link: jsonLink{Up: dirJSON(n.Link.Up), Down: dirJSON(n.Link.Down)}, Download: n.Download.Seconds(),
			Confirmed: n.Confirmed.Seconds(), Transfer: n.Transfer, Fetched: n.Fetched, Fallback: n.Fallback}
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
