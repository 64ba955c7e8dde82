package scenario

import (
	"cmp"
	"fmt"
	"maps"
	"strings"
	"time"

	"edgeota/firmware-sim/radio"
	"edgeota/protocol"
	"edgeota/protocol/cohort"
)

// maxOffenders is how many failing nodes an [Outcome]'s Detail names.
const maxOffenders = 5

// Result is what the fleet simulator observed in one run, the input of
// [Evaluate] and the reports.
type Result struct {
	// Seed is the seed the run used, to replay it.
	Seed uint64
	// SimElapsed is the simulated time the run lasted.
	SimElapsed time.Duration
	// RealElapsed is the wall-clock time the run lasted.
	RealElapsed time.Duration
	// Finished is true when every deployment ended before the duration.
	Finished bool
	// Nodes is every node at the end, in fleet order.
	Nodes []NodeResult
	// Rollouts is every deployment of the scenario that was applied.
	Rollouts []RolloutResult
	// HealthAccepted is how many health reports the gateway accepted.
	HealthAccepted int
	// HealthDelivered is how many distinct accepted reports reached the
	// MQTT broker.
	HealthDelivered int
	// HealthDuplicates is how many reports reached the broker more than
	// once (counted once per extra copy).
	HealthDuplicates int
	// ProvisionElapsed is the wall-clock time provisioning every node over
	// BLE took (provision: ble), from the first scan to the last commit.
	ProvisionElapsed time.Duration
	// Resources is what the run cost the process that ran it; nil when
	// not measured.
	Resources *Resources
}

// Resources is what a run cost the process that ran it: the simulator,
// and the gateway and broker when they ran in it. A figure the platform
// does not give is zero (RSS and descriptors come from Linux's /proc).
type Resources struct {
	// CPU is the process's user and system CPU time during the run.
	CPU time.Duration
	// HeapPerNode is the growth of the Go heap in use (after a
	// collection) from before the nodes started to the moment every node
	// had said Hello, divided by the number of nodes, in bytes.
	HeapPerNode int64
	// RSSPerNode is the growth of the resident set over the same span,
	// divided by the number of nodes, in bytes.
	RSSPerNode int64
	// PeakRSS is the process's largest resident set, in bytes.
	PeakRSS int64
	// FDs is the number of open file descriptors, and Goroutines the
	// number of goroutines, once every node had said Hello.
	FDs, Goroutines int
}

// NodeResult is one node at the end of a run.
type NodeResult struct {
	// ID is the node's ID, such as "node-017".
	ID string
	// Labels are the node's labels.
	Labels map[string]string
	// Model is the name of the model the node runs, "" for none.
	Model string
	// State is [StateConfirmed], [StateTrial] or [StateNone].
	State string
	// Unbootable is how many times the node booted with no runnable model
	// after having had one.
	Unbootable int
	// PowerCuts is how many power cuts the node went through.
	PowerCuts int
	// Boots is the node's boot count at the end.
	Boots uint64
	// Provisioned tells whether the node committed a provisioning bundle
	// over BLE (provision: ble).
	Provisioned bool
	// Registered is the labels the gateway's node registry holds for the
	// node at the end, nil when the gateway does not know it. Filled in
	// with provision: ble.
	Registered map[string]string
	// Audit is the gateway's provisioning audit entries about the node
	// (GET /v1/audit), oldest first. Filled in with provision: ble.
	Audit []AuditEntry
	// LinkOutages is how many link-outage faults struck the node's radio.
	LinkOutages int
	// OutageDropped is how many datagrams, both ways, its radio dropped
	// because of an outage.
	OutageDropped uint64
	// Link is what the node's radio link carried each way: datagrams,
	// bytes, frames, bytes and time on air (on the link's clock:
	// simulated with a profile, real without).
	Link radio.Stats
	// Download is how long the node's latest download took, in simulated
	// time: from its agent's downloading transition to its downloaded one
	// (the image fetched and written to flash); 0 if none finished.
	Download time.Duration
	// Confirmed is when the node last confirmed an update, in simulated
	// time since the run started; 0 if it confirmed none.
	Confirmed time.Duration
	// HeardAfterOutage is how many of its documents (Hello, health report,
	// status event) the gateway accepted after its last outage ended.
	HeardAfterOutage int
	// Transfer is how the node fetched its latest verified update:
	// "delta", "full" or "" (none), from its status event's transfer (key
	// 64).
	Transfer string
	// Fetched is the payload bytes the node fetched from the gateway for
	// its updates, deltas and images together (the transfers' key 3,
	// summed over the updates it verified).
	Fetched uint64
	// Fallback is why the node abandoned a delta for the full image in
	// its latest update, "" when it did not.
	Fallback string
}

// AuditEntry is one entry of the gateway's provisioning audit log, as far
// as the expectations look at it.
type AuditEntry struct {
	// Actor is who provisioned: the operator key id.
	Actor string
	// Labels are the labels the gateway held for the node when it recorded
	// the entry.
	Labels map[string]string
	// Authenticated tells whether the node reported it over a DTLS
	// session proving its own key.
	Authenticated bool
}

// RolloutResult is one deployment at the end of a run, as the gateway saw
// it.
type RolloutResult struct {
	// ID is the deployment's ID.
	ID string
	// Model is the name of the deployment's model.
	Model string
	// Phase is the rollout's phase: pending, running, paused, completed,
	// aborted, rolled-back or superseded.
	Phase string
	// MaxWave is the highest wave reached, 1-based; 0 if none started.
	MaxWave int
	// Touched is how many nodes the rollout asked to update.
	Touched int
	// Succeeded is how many of them confirmed the model.
	Succeeded int
	// Failed is how many of them failed or reverted.
	Failed int
	// Elapsed is the simulated time from the rollout's start to its last
	// change of phase or wave once it ended (completed, aborted,
	// rolled-back or superseded); 0 while it has not ended.
	Elapsed time.Duration
}

// Outcome is the verdict on one [Expectation].
type Outcome struct {
	// Expectation is the expectation judged.
	Expectation Expectation
	// Name is the expectation's name, or its default name if it has none.
	Name string
	// Passed tells whether the expectation held.
	Passed bool
	// Detail says why, with counts and at most 5 offending nodes, such as
	// "148 of 150 hw:rev2 nodes run v2; node-017 runs v1 (confirmed), ...".
	Detail string
}

// Evaluate judges every expectation of s against r, in order.
func Evaluate(s *Scenario, r *Result) []Outcome {
	outs := make([]Outcome, 0, len(s.Expect))
	for _, e := range s.Expect {
		o := Outcome{Expectation: e, Name: e.Name}
		if o.Name == "" {
			o.Name = defaultName(s, e)
		}
		o.Passed, o.Detail = evaluate(s, r, e)
		outs = append(outs, o)
	}
	return outs
}

// Passed reports whether every outcome passed.
func Passed(outs []Outcome) bool {
	for _, o := range outs {
		if !o.Passed {
			return false
		}
	}
	return true
}

func evaluate(s *Scenario, r *Result, e Expectation) (bool, string) {
	switch e.Kind {
	case ExpectAllRun:
		return allRun(r, e)
	case ExpectNoneRun:
		return noneRun(r, e)
	case ExpectNoUnbootable:
		return noUnbootable(r, e)
	case ExpectRollout:
		return rollout(s, r, e)
	case ExpectHealthDelivered:
		return healthDelivered(r)
	case ExpectProvisioned:
		return provisioned(s, r, e)
	case ExpectLinkRecovered:
		return linkRecovered(r, e)
	case ExpectTookDelta:
		return tookDelta(r, e)
	case ExpectAirRatio:
		return airRatio(r, e)
	}
	return false, fmt.Sprintf("unknown expectation kind %q", e.Kind)
}

// occupiedCohort returns the nodes of r in the expectation's cohort, or
// why the expectation fails without them: a bad expression or no node.
func occupiedCohort(r *Result, e Expectation) ([]NodeResult, string) {
	nodes, err := cohortNodes(r, e.Cohort)
	if err != nil {
		return nil, err.Error()
	}
	if len(nodes) == 0 {
		return nil, fmt.Sprintf("no node is in the cohort %s", cohortOrAll(e.Cohort))
	}
	return nodes, ""
}

// cohortNodes returns the nodes of r in the expectation's cohort.
func cohortNodes(r *Result, expr string) ([]NodeResult, error) {
	if expr == "" {
		expr = "*"
	}
	c, err := cohort.Parse(expr)
	if err != nil {
		return nil, err
	}
	var out []NodeResult
	for _, n := range r.Nodes {
		if c.Match(n.Labels) {
			out = append(out, n)
		}
	}
	return out, nil
}

// nodesOf returns "nodes" or "hw:rev2 nodes".
func nodesOf(expr string) string {
	if expr == "" || expr == "*" {
		return "nodes"
	}
	return expr + " nodes"
}

// running describes what a node runs: "runs v1 (confirmed)" or "runs
// nothing".
func running(n NodeResult) string {
	if n.Model == "" {
		return "runs nothing"
	}
	return fmt.Sprintf("runs %s (%s)", n.Model, n.State)
}

// offenders lists at most maxOffenders items, then how many more.
func offenders(items []string) string {
	if len(items) <= maxOffenders {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxOffenders], ", "), len(items)-maxOffenders)
}

func allRun(r *Result, e Expectation) (bool, string) {
	nodes, why := occupiedCohort(r, e)
	if why != "" {
		return false, why
	}
	var bad []string
	for _, n := range nodes {
		if n.Model != e.Model || n.State != StateConfirmed {
			bad = append(bad, n.ID+" "+running(n))
		}
	}
	d := fmt.Sprintf("%d of %d %s run %s", len(nodes)-len(bad), len(nodes), nodesOf(e.Cohort), e.Model)
	if len(bad) > 0 {
		d += "; " + offenders(bad)
	}
	return len(bad) == 0, d
}

func noneRun(r *Result, e Expectation) (bool, string) {
	nodes, err := cohortNodes(r, e.Cohort)
	if err != nil {
		return false, err.Error()
	}
	var bad []string
	for _, n := range nodes {
		if n.Model == e.Model {
			bad = append(bad, fmt.Sprintf("%s (%s)", n.ID, n.State))
		}
	}
	d := fmt.Sprintf("%d of %d %s run %s", len(bad), len(nodes), nodesOf(e.Cohort), e.Model)
	if len(bad) > 0 {
		d += ": " + offenders(bad)
	}
	return len(bad) == 0, d
}

func noUnbootable(r *Result, e Expectation) (bool, string) {
	nodes, err := cohortNodes(r, e.Cohort)
	if err != nil {
		return false, err.Error()
	}
	var bad []string
	total := 0
	for _, n := range nodes {
		if n.Unbootable > 0 {
			total += n.Unbootable
			bad = append(bad, fmt.Sprintf("%s (%s)", n.ID, times(n.Unbootable)))
		}
	}
	if len(bad) == 0 {
		return true, fmt.Sprintf("none of %d %s was ever unbootable", len(nodes), nodesOf(e.Cohort))
	}
	return false, fmt.Sprintf("%d of %d %s booted with no runnable model, %s in all: %s",
		len(bad), len(nodes), nodesOf(e.Cohort), times(total), offenders(bad))
}

func times(n int) string {
	if n == 1 {
		return "1 time"
	}
	return fmt.Sprintf("%d times", n)
}

func rollout(s *Scenario, r *Result, e Expectation) (bool, string) {
	var ro *RolloutResult
	for i := range r.Rollouts {
		if r.Rollouts[i].ID == e.Deployment {
			ro = &r.Rollouts[i]
			break
		}
	}
	if ro == nil {
		return false, fmt.Sprintf("rollout %s is not in the result (never applied?)", e.Deployment)
	}
	d := fmt.Sprintf("rollout %s %s at wave %s, %d touched, %d succeeded, %d failed",
		ro.ID, ro.Phase, waveOf(s, ro), ro.Touched, ro.Succeeded, ro.Failed)
	var why []string
	if e.Phase != "" && ro.Phase != e.Phase {
		why = append(why, "want phase "+e.Phase)
	}
	if e.MaxWave > 0 && ro.MaxWave > e.MaxWave {
		why = append(why, fmt.Sprintf("want at most wave %d", e.MaxWave))
	}
	if len(why) > 0 {
		d += "; " + strings.Join(why, ", ")
	}
	return len(why) == 0, d
}

// waveOf returns "2 of 3", or "2" when the deployment is unknown.
func waveOf(s *Scenario, ro *RolloutResult) string {
	if d := s.Deployment(ro.ID); d != nil {
		return fmt.Sprintf("%d of %d", ro.MaxWave, len(d.Waves))
	}
	return fmt.Sprint(ro.MaxWave)
}

func healthDelivered(r *Result) (bool, string) {
	if r.HealthAccepted == 0 {
		return false, "the gateway accepted no health report"
	}
	d := fmt.Sprintf("%d of %d accepted health reports reached the broker (%d duplicates)",
		min(r.HealthDelivered, r.HealthAccepted), r.HealthAccepted, r.HealthDuplicates)
	return r.HealthDelivered >= r.HealthAccepted, d
}

func provisioned(s *Scenario, r *Result, e Expectation) (bool, string) {
	nodes, why := occupiedCohort(r, e)
	if why != "" {
		return false, why
	}
	var bad []string
	done, entries := 0, 0
	for _, n := range nodes {
		entries += len(n.Audit)
		if n.Provisioned {
			done++
		}
		switch {
		case !n.Provisioned:
			bad = append(bad, n.ID+" not provisioned")
		case n.Registered == nil:
			bad = append(bad, n.ID+" unknown to the gateway")
		case !maps.Equal(n.Registered, n.Labels):
			bad = append(bad, fmt.Sprintf("%s known with labels %s, want %s", n.ID, labelText(n.Registered), labelText(n.Labels)))
		case len(n.Audit) != 1:
			bad = append(bad, fmt.Sprintf("%s has %d audit entries", n.ID, len(n.Audit)))
		case !maps.Equal(n.Audit[0].Labels, n.Labels):
			bad = append(bad, fmt.Sprintf("%s audited with labels %s", n.ID, labelText(n.Audit[0].Labels)))
		case s.Transport == TransportDTLS && !n.Audit[0].Authenticated:
			bad = append(bad, n.ID+" audited without its DTLS key")
		}
	}
	d := fmt.Sprintf("%d of %d %s provisioned over BLE, %d audit entries", done, len(nodes), nodesOf(e.Cohort), entries)
	if len(bad) > 0 {
		d += "; " + offenders(bad)
	}
	return len(bad) == 0, d
}

func linkRecovered(r *Result, e Expectation) (bool, string) {
	nodes, err := cohortNodes(r, e.Cohort)
	if err != nil {
		return false, err.Error()
	}
	var bad []string
	struck, recovered := 0, 0
	var dropped uint64
	for _, n := range nodes {
		if n.LinkOutages == 0 {
			continue
		}
		struck++
		dropped += n.OutageDropped
		switch {
		case n.OutageDropped == 0:
			bad = append(bad, n.ID+" lost nothing to its outage")
		case n.HeardAfterOutage == 0:
			bad = append(bad, n.ID+" not heard after its outage")
		default:
			recovered++
		}
	}
	if struck == 0 {
		return false, fmt.Sprintf("no link outage struck any of %d %s", len(nodes), nodesOf(e.Cohort))
	}
	d := fmt.Sprintf("%d of %d %s whose link went out were heard after it; the outages dropped %d datagrams",
		recovered, struck, nodesOf(e.Cohort), dropped)
	if len(bad) > 0 {
		d += "; " + offenders(bad)
	}
	return len(bad) == 0, d
}

// labelText writes labels in braces, {hw=rev2,region=eu}, so that an
// empty set shows.
func labelText(labels map[string]string) string { return "{" + protocol.FormatLabels(labels) + "}" }

func cohortOrAll(expr string) string {
	if expr == "" {
		return "*"
	}
	return expr
}

// defaultName is an expectation's name when the scenario gives none.
func defaultName(s *Scenario, e Expectation) string {
	model := e.Model
	if m := s.Model(e.Model); m != nil {
		model = fmt.Sprintf("%s (%s)", m.Name, m.Version)
	}
	every := "every node"
	none := "no node"
	if e.Cohort != "" && e.Cohort != "*" {
		every = "every " + e.Cohort + " node"
		none = "no " + e.Cohort + " node"
	}
	switch e.Kind {
	case ExpectAllRun:
		return every + " runs " + model
	case ExpectNoneRun:
		return none + " runs " + model
	case ExpectNoUnbootable:
		return none + " is ever unbootable"
	case ExpectRollout:
		parts := []string{"rollout", e.Deployment}
		if e.Phase != "" {
			parts = append(parts, e.Phase)
		}
		if e.MaxWave > 0 {
			parts = append(parts, fmt.Sprintf("within wave %d", e.MaxWave))
		}
		return strings.Join(parts, " ")
	case ExpectHealthDelivered:
		return "every accepted health report reaches the broker"
	case ExpectProvisioned:
		return every + " provisioned over BLE and audited once"
	case ExpectLinkRecovered:
		return strings.Replace(every, "node", "node whose link went out", 1) + " is heard again after it"
	case ExpectTookDelta:
		if e.MinPercent != 0 && e.MinPercent < 10000 {
			return fmt.Sprintf("at least %s%% of %s running %s took it as a delta", percentText(e.MinPercent), nodesOf(e.Cohort), model)
		}
		return every + " running " + model + " took it as a delta"
	case ExpectAirRatio:
		return fmt.Sprintf("%s put at most %s%% of the bytes on air of %s", nodesOf(e.Cohort), percentText(e.MaxPercent), nodesOf(e.Baseline))
	}
	return e.Kind
}

func tookDelta(r *Result, e Expectation) (bool, string) {
	nodes, why := occupiedCohort(r, e)
	if why != "" {
		return false, why
	}
	var bad []string
	took, ran := 0, 0
	for _, n := range nodes {
		if n.Model != e.Model || n.State != StateConfirmed {
			continue
		}
		ran++
		switch {
		case n.Transfer == "delta":
			took++
		case n.Fallback != "":
			bad = append(bad, fmt.Sprintf("%s took the full image (%s)", n.ID, n.Fallback))
		default:
			bad = append(bad, fmt.Sprintf("%s took the %s image", n.ID, cmp.Or(n.Transfer, "no")))
		}
	}
	if ran == 0 {
		return false, fmt.Sprintf("no %s runs %s", strings.TrimSuffix(nodesOf(e.Cohort), "s"), e.Model)
	}
	d := fmt.Sprintf("%d of %d %s that run %s took it as a delta", took, ran, nodesOf(e.Cohort), e.Model)
	if len(bad) > 0 {
		d += "; " + offenders(bad)
	}
	if e.MinPercent != 0 {
		return uint64(took)*10000 >= e.MinPercent*uint64(ran), d
	}
	return len(bad) == 0, d
}

// airPerNode is the bytes on air per node, both ways, of a cohort's
// nodes, and the payload bytes they fetched per node.
func airPerNode(r *Result, expr string) (air, fetched float64, n int, err error) {
	nodes, err := cohortNodes(r, expr)
	if err != nil || len(nodes) == 0 {
		return 0, 0, 0, err
	}
	var a, f uint64
	for _, nd := range nodes {
		a += nd.Link.Up.AirBytes + nd.Link.Down.AirBytes
		f += nd.Fetched
	}
	return float64(a) / float64(len(nodes)), float64(f) / float64(len(nodes)), len(nodes), nil
}

func airRatio(r *Result, e Expectation) (bool, string) {
	air, fetched, n, err := airPerNode(r, e.Cohort)
	if err == nil && n == 0 {
		err = fmt.Errorf("no node is in the cohort %s", cohortOrAll(e.Cohort))
	}
	if err != nil {
		return false, err.Error()
	}
	bair, bfetched, bn, err := airPerNode(r, e.Baseline)
	if err == nil && bn == 0 {
		err = fmt.Errorf("no node is in the baseline cohort %s", e.Baseline)
	}
	if err != nil {
		return false, err.Error()
	}
	if bair == 0 {
		return false, fmt.Sprintf("the baseline's %d nodes put nothing on air", bn)
	}
	ratio := air / bair
	d := fmt.Sprintf("%s: %s on air per node (%s fetched), %s: %s (%s fetched): %.1f%%, at most %s%%",
		nodesOf(e.Cohort), bytesText(int64(air)), bytesText(int64(fetched)), nodesOf(e.Baseline), bytesText(int64(bair)),
		bytesText(int64(bfetched)), 100*ratio, percentText(e.MaxPercent))
	return ratio*10000 <= float64(e.MaxPercent), d
}

// percentText writes basis points as a percent: 2500 is "25", 1250 "12.5".
func percentText(bp uint64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%d.%02d", bp/100, bp%100), "0"), ".")
}
