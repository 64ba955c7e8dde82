package adminhttp

import (
	"edgeota/gateway/admin"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// The admin API's documents are made from the gateway's own types here,
// and only here; a nil slice stays nil (JSON null), as it was.

func modelOf(m *store.Model) admin.Model {
	return admin.Model{Digest: m.Digest.String(), Component: m.Manifest.Component, Version: m.Manifest.Version,
		Seq: m.Manifest.Seq, Epoch: m.Manifest.Epoch, SizeBytes: m.Size, Added: m.Added, LastUsed: m.LastUsed}
}

// nodeOf is a registry node, without its assignment.
func nodeOf(n *store.Node) admin.Node {
	return admin.Node{ID: n.ID, Class: n.Class.String(), Labels: n.Labels, Component: n.Component, AgentVersion: n.AgentVersion, Runtime: n.Runtime,
		RunningSeq: n.RunningSeq, RunningDigest: n.RunningDigest.String(), ActiveSlot: n.ActiveSlot.String(),
		ActiveState: n.ActiveState.String(), EpochFloor: n.EpochFloor, LastState: n.LastState.String(), LastReason: n.LastReason,
		LastCode: reasonCode(n.LastCode), LastSeen: n.LastSeen, Addr: n.Addr, HealthReports: n.HealthReports, StatusEvents: n.StatusEvents,
		DeltaFormats: n.DeltaFormats, Transfer: transferOf(n.Transfer)}
}

// transferOf is a node's latest transfer, nil for none.
func transferOf(t *store.Transfer) *admin.Transfer {
	if t == nil {
		return nil
	}
	a := &admin.Transfer{Seq: t.Seq, Digest: t.Digest.String(), State: t.State.String(), Kind: t.Kind.String(),
		FetchedBytes: t.Fetched, Fallback: t.Fallback}
	if !t.Delta.IsZero() {
		a.Delta = t.Delta.String()
	}
	return a
}

// reasonCode names a status event's reason code, "" for none.
func reasonCode(r protocol.Reason) string {
	if r == protocol.ReasonNone {
		return ""
	}
	return r.String()
}

func auditEntryOf(e store.AuditEntry) admin.AuditEntry {
	return admin.AuditEntry{Seq: e.Seq, At: e.At, Node: e.Node, Actor: e.Actor, Detail: e.Detail, Labels: e.Labels,
		Component: e.Component, From: e.From, Authenticated: e.Authenticated}
}

// Rollout is a rollout's status as the admin API and the retained
// rollout topic carry it: a summary without its nodes.
func Rollout(st rollout.StatusView) admin.Rollout {
	r := admin.Rollout{ID: st.ID, Seq: st.Seq, Phase: admin.Phase(st.Phase), Component: st.Component, Version: st.Version,
		ManifestSeq: st.ManSeq, Digest: st.Digest, Cohort: st.Cohort, Wave: st.Wave, Started: st.Started, Updated: st.Updated,
		Totals: st.Totals, Ineligible: st.Ineligible, Transfers: admin.Transfers(st.Transfers)}
	if st.Waves != nil {
		r.Waves = make([]admin.Wave, len(st.Waves))
		for i, w := range st.Waves {
			r.Waves[i] = admin.Wave(w)
		}
	}
	if st.Gates != nil {
		r.Gates = make([]admin.Gate, len(st.Gates))
		for i, g := range st.Gates {
			r.Gates[i] = admin.Gate(g)
		}
	}
	if st.Decisions != nil {
		r.Decisions = make([]admin.Decision, len(st.Decisions))
		for i, d := range st.Decisions {
			r.Decisions[i] = admin.Decision(d)
		}
	}
	return r
}

// rolloutNodeOf is one node's state in a rollout.
func rolloutNodeOf(n rollout.NodeView) admin.RolloutNode {
	return admin.RolloutNode{ID: n.ID, Wave: n.Wave, State: admin.NodeState(n.State), Since: n.Since, Reason: n.Reason,
		Transfer: n.Transfer, FetchedBytes: n.Fetched, Fallback: n.Fallback}
}
