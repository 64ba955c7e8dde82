package main

import (
	"fmt"
	"strings"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// The views render protocol documents as JSON for people and scripts:
// field names spelled out with their units, digests in hex, classes as
// UUIDs, times in RFC 3339.

func rfc3339(unix uint64) any {
	if unix == 0 {
		return nil
	}
	return time.Unix(int64(unix), 0).UTC().Format(time.RFC3339)
}

// permilleText renders a per-mille value as a decimal fraction ("0.02").
func permilleText(v uint64) string { return decimalText(v, 3) }

func decimalText(v uint64, places int) string {
	scale := uint64(1)
	for i := 0; i < places; i++ {
		scale *= 10
	}
	s := fmt.Sprintf("%d.%0*d", v/scale, places, v%scale)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

type probationView struct {
	Seconds          uint64  `json:"seconds"`
	MinInferences    uint64  `json:"min_inferences"`
	MaxErrorPermille *uint64 `json:"max_error_permille,omitempty"`
	MaxP99Micros     *uint64 `json:"max_p99_us,omitempty"`
	MaxRAMBytes      *uint64 `json:"max_ram_bytes,omitempty"`
	MaxCPUPermille   *uint64 `json:"max_cpu_permille,omitempty"`
	OnShortfall      string  `json:"on_shortfall"`
}

type requiresView struct {
	MinAgentVersion string `json:"min_agent_version,omitempty"`
	Runtime         string `json:"runtime,omitempty"`
}

type manifestJSON struct {
	Format    uint64         `json:"format"`
	Seq       uint64         `json:"seq"`
	Component string         `json:"component"`
	Version   string         `json:"version"`
	Digest    string         `json:"digest"`
	SizeBytes uint64         `json:"size_bytes"`
	Class     string         `json:"class"`
	Epoch     uint64         `json:"epoch"`
	Location  string         `json:"location"`
	Probation *probationView `json:"probation,omitempty"`
	Issued    any            `json:"issued,omitempty"`
	Requires  *requiresView  `json:"requires,omitempty"`
}

func manifestView(m *protocol.Manifest) manifestJSON {
	v := manifestJSON{Format: m.Format, Seq: m.Seq, Component: m.Component, Version: m.Version,
		Digest: m.Digest.String(), SizeBytes: m.Size, Class: m.Class.String(), Epoch: m.Epoch,
		Location: m.ImagePath(), Issued: rfc3339(m.Issued)}
	if p := m.Probation; p != nil {
		v.Probation = &probationView{Seconds: p.Seconds, MinInferences: p.MinInferences,
			MaxErrorPermille: p.MaxErrorPermille, MaxP99Micros: p.MaxP99Micros, MaxRAMBytes: p.MaxRAMBytes,
			MaxCPUPermille: p.MaxCPUPermille, OnShortfall: p.OnShortfall.String()}
	}
	if r := m.Requires; r != nil {
		v.Requires = &requiresView{MinAgentVersion: r.MinAgentVersion, Runtime: r.Runtime}
	}
	return v
}

type otherSlotView struct {
	Seq    uint64 `json:"seq"`
	Digest string `json:"digest"`
	State  string `json:"state"`
	Epoch  uint64 `json:"epoch"`
}

func helloView(h *protocol.Hello) any {
	v := struct {
		NodeID        string            `json:"node_id"`
		Class         string            `json:"class"`
		Labels        map[string]string `json:"labels"`
		RunningSeq    uint64            `json:"running_seq"`
		RunningDigest string            `json:"running_digest"`
		ActiveSlot    string            `json:"active_slot"`
		AgentVersion  string            `json:"agent_version"`
		EpochFloor    uint64            `json:"epoch_floor"`
		ActiveState   string            `json:"active_state"`
		OtherSlot     *otherSlotView    `json:"other_slot"`
		Component     string            `json:"component"`
		Runtime       string            `json:"runtime,omitempty"`
		DeltaFormats  []uint64          `json:"delta_formats,omitempty"`
	}{h.NodeID, h.Class.String(), h.Labels, h.RunningSeq, h.RunningDigest.String(), h.ActiveSlot.String(),
		h.AgentVersion, h.EpochFloor, h.ActiveState.String(), nil, h.Component, h.Runtime, h.DeltaFormats}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if o := h.Other; o != nil {
		v.OtherSlot = &otherSlotView{o.Seq, o.Digest.String(), o.State.String(), o.Epoch}
	}
	return v
}

type healthJSON struct {
	NodeID           string           `json:"node_id"`
	UptimeSeconds    uint64           `json:"uptime_seconds"`
	RunningSeq       uint64           `json:"running_seq"`
	ActiveSlot       string           `json:"active_slot"`
	Inferences       uint64           `json:"inferences"`
	Errors           uint64           `json:"errors"`
	LatencyP50Micros uint64           `json:"latency_p50_us"`
	LatencyP99Micros uint64           `json:"latency_p99_us"`
	CPUPermille      uint64           `json:"cpu_permille"`
	RAMBytes         uint64           `json:"ram_bytes"`
	BootCount        uint64           `json:"boot_count"`
	Time             any              `json:"time"`
	ReportNumber     uint64           `json:"report_number"`
	Metrics          map[string]int64 `json:"metrics,omitempty"`
}

func healthView(r *protocol.HealthReport) healthJSON {
	return healthJSON{r.NodeID, r.UptimeSeconds, r.RunningSeq, r.ActiveSlot.String(), r.Inferences, r.Errors,
		r.LatencyP50Micros, r.LatencyP99Micros, r.CPUPermille, r.RAMBytes, r.BootCount, rfc3339(r.Time), r.Number, r.Metrics}
}

type statusJSON struct {
	NodeID        string        `json:"node_id"`
	State         string        `json:"state"`
	Seq           uint64        `json:"seq"`
	Digest        string        `json:"digest"`
	Reason        string        `json:"reason"`
	BytesReceived uint64        `json:"bytes_received"`
	ReasonCode    string        `json:"reason_code"`
	BootCount     uint64        `json:"boot_count"`
	EventNumber   uint64        `json:"event_number"`
	Actor         string        `json:"actor,omitempty"`
	Transfer      *transferJSON `json:"transfer,omitempty"`
}

// transferJSON is a status event's key 64 (v1.4).
type transferJSON struct {
	Kind         string `json:"kind"`
	Delta        string `json:"delta,omitempty"`
	FetchedBytes uint64 `json:"fetched_bytes"`
	Fallback     string `json:"fallback,omitempty"`
}

func statusView(e *protocol.StatusEvent) statusJSON {
	v := statusJSON{e.NodeID, e.State.String(), e.Seq, e.Digest.String(), e.Reason, e.BytesReceived,
		e.Code.String(), e.BootCount, e.Number, e.Actor, nil}
	if t := e.Transfer; t != nil {
		v.Transfer = &transferJSON{Kind: t.Kind.String(), FetchedBytes: t.Fetched, Fallback: t.Fallback}
		if !t.Delta.IsZero() {
			v.Transfer.Delta = t.Delta.String()
		}
	}
	return v
}

// deltaOfferJSON is a delta offer (v1.4), the unsigned hint a gateway
// puts in a manifest's unprotected header.
type deltaOfferJSON struct {
	Format     uint64 `json:"format"`
	BaseDigest string `json:"base_digest"`
	Delta      string `json:"delta"`
	SizeBytes  uint64 `json:"size_bytes"`
	Location   string `json:"location"`
}

func deltaOfferView(o *protocol.DeltaOffer) *deltaOfferJSON {
	return &deltaOfferJSON{o.Format, o.Base.String(), o.Delta.String(), o.Size, protocol.DeltaPath(o.Delta)}
}

type waveView struct {
	Percent     string `json:"percent"`
	Bake        string `json:"bake"`
	BakeSeconds uint64 `json:"bake_seconds"`
}

type gatesView struct {
	MaxFailed                    *uint64          `json:"max_failed,omitempty"`
	MaxErrorRate                 string           `json:"max_error_rate,omitempty"`
	MaxErrorPermille             *uint64          `json:"max_error_permille,omitempty"`
	MaxLatencyP99Micros          *uint64          `json:"max_latency_p99_us,omitempty"`
	MaxLatencyRegression         string           `json:"max_latency_regression,omitempty"`
	MaxLatencyRegressionPermille *uint64          `json:"max_latency_regression_permille,omitempty"`
	MinReports                   *uint64          `json:"min_reports,omitempty"`
	MaxBootLoops                 *uint64          `json:"max_boot_loops,omitempty"`
	Metrics                      map[string]int64 `json:"metrics,omitempty"`
}

// deploymentView renders a deployment; its embedded manifests are shown
// through envelopeView (parsed, not verified).
func deploymentView(d *protocol.Deployment) any {
	waves := make([]waveView, len(d.Waves))
	for i, w := range d.Waves {
		waves[i] = waveView{decimalText(w.BasisPoints, 2), (time.Duration(w.BakeSeconds) * time.Second).String(), w.BakeSeconds}
	}
	g := d.Gates
	gv := gatesView{MaxFailed: g.MaxFailed, MaxErrorPermille: g.MaxErrorPermille, MaxLatencyP99Micros: g.MaxLatencyP99Micros,
		MaxLatencyRegressionPermille: g.MaxLatencyRegressionPermille, MinReports: g.MinReports, MaxBootLoops: g.MaxBootLoops, Metrics: g.Metrics}
	if g.MaxErrorPermille != nil {
		gv.MaxErrorRate = permilleText(*g.MaxErrorPermille)
	}
	if g.MaxLatencyRegressionPermille != nil {
		gv.MaxLatencyRegression = permilleText(*g.MaxLatencyRegressionPermille)
	}
	v := struct {
		ID                 string     `json:"id"`
		Seq                uint64     `json:"seq"`
		Manifest           any        `json:"manifest"`
		Origin             string     `json:"origin,omitempty"`
		TargetCohort       string     `json:"target_cohort"`
		Waves              []waveView `json:"waves"`
		Gates              gatesView  `json:"gates"`
		OnFailure          string     `json:"on_failure"`
		NodeTimeoutSeconds uint64     `json:"node_timeout_seconds"`
		MaxConcurrent      uint64     `json:"max_concurrent"`
		Gateways           []string   `json:"gateways,omitempty"`
		Issued             any        `json:"issued"`
		Expires            any        `json:"expires"`
		RollbackManifest   any        `json:"rollback_manifest,omitempty"`
	}{d.ID, d.Seq, envelopeView(d.Manifest), d.Origin, d.Cohort, waves, gv, d.OnFailure.String(),
		d.NodeTimeoutSeconds, d.MaxConcurrent, d.Gateways, rfc3339(d.Issued), rfc3339(d.Expires), nil}
	if len(d.RollbackManifest) > 0 {
		v.RollbackManifest = envelopeView(d.RollbackManifest)
	}
	return v
}

// envelopeView renders an embedded signed document, or the reason it
// cannot be read.
func envelopeView(b []byte) any {
	e, err := sign.Parse(b)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	doc, _, err := decodePayload(e.ContentType, e.Payload)
	if err != nil {
		return map[string]any{"kid": e.KeyID.String(), "content_type": e.ContentType, "error": err.Error()}
	}
	return map[string]any{"kid": e.KeyID.String(), "content_type": e.ContentType, "document": doc}
}

// decodePayload decodes the payload of a signed document by content type.
func decodePayload(contentType string, payload []byte) (view any, kind string, err error) {
	switch contentType {
	case protocol.ContentTypeManifest:
		m, err := protocol.DecodeManifest(payload)
		if err != nil {
			return nil, "", err
		}
		return manifestView(m), "manifest", nil
	case protocol.ContentTypeDeployment:
		d, err := protocol.DecodeDeployment(payload)
		if err != nil {
			return nil, "", err
		}
		return deploymentView(d), "deployment", nil
	}
	return nil, "", fmt.Errorf("unknown content type %q", contentType)
}
