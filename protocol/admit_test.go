package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"edgeota/protocol"
)

func TestAdmit(t *testing.T) {
	base := protocol.NodeState{Class: testClass, Component: "kws-model", AgentVersion: "0.3.1", Runtime: "tflm",
		EpochFloor: 2, HighestSeq: 41}
	old := &protocol.Manifest{Format: 1, Seq: 40, Component: "kws-model", Version: "1.3.0", Digest: testDigest(0x30), Size: 100, Class: testClass, Epoch: 2}
	tests := []struct {
		name   string
		state  func(*protocol.NodeState)
		man    func(*protocol.Manifest)
		want   protocol.Admission
		reason protocol.Reason
	}{
		{name: "newer seq installs", want: protocol.AdmitInstall},
		{name: "same seq refused", man: func(m *protocol.Manifest) { m.Seq = 41 }, reason: protocol.ReasonSeq},
		{name: "older seq refused", man: func(m *protocol.Manifest) { m.Seq = 12 }, reason: protocol.ReasonSeq},
		{name: "epoch below floor", man: func(m *protocol.Manifest) { m.Epoch = 1 }, reason: protocol.ReasonEpoch},
		{name: "epoch at floor", man: func(m *protocol.Manifest) { m.Epoch = 2 }, want: protocol.AdmitInstall},
		{name: "other class", man: func(m *protocol.Manifest) { m.Class[0] ^= 1 }, reason: protocol.ReasonClass},
		{name: "other component", man: func(m *protocol.Manifest) { m.Component = "vision" }, reason: protocol.ReasonOther},
		{name: "agent too old", man: func(m *protocol.Manifest) { m.Requires = &protocol.Requires{MinAgentVersion: "0.10.0"} }, reason: protocol.ReasonRequires},
		{name: "agent new enough", man: func(m *protocol.Manifest) { m.Requires = &protocol.Requires{MinAgentVersion: "0.3"} }, want: protocol.AdmitInstall},
		{name: "runtime mismatch", man: func(m *protocol.Manifest) { m.Requires = &protocol.Requires{Runtime: "onnx"} }, reason: protocol.ReasonRequires},
		{name: "revert to other slot's manifest", state: func(s *protocol.NodeState) { s.Other = old },
			man: func(m *protocol.Manifest) { *m = *old }, want: protocol.AdmitRevert},
		{name: "revert below floor refused", state: func(s *protocol.NodeState) { o := *old; o.Epoch = 1; s.Other = &o },
			man: func(m *protocol.Manifest) { *m = *old; m.Epoch = 1 }, reason: protocol.ReasonEpoch},
		{name: "old seq with other digest is a rollback", state: func(s *protocol.NodeState) { s.Other = old },
			man: func(m *protocol.Manifest) { *m = *old; m.Digest = testDigest(0x99) }, reason: protocol.ReasonSeq},
		{name: "re-signed old image under higher seq", state: func(s *protocol.NodeState) { s.Other = nil },
			man: func(m *protocol.Manifest) { *m = *old; m.Seq = 50 }, want: protocol.AdmitInstall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := base
			if tt.state != nil {
				tt.state(&st)
			}
			m := sampleManifest()
			m.Requires = nil
			if tt.man != nil {
				tt.man(m)
			}
			got, err := protocol.Admit(st, m)
			if tt.reason != 0 {
				var re *protocol.RejectError
				if !errors.As(err, &re) || re.Code != tt.reason || !errors.Is(err, protocol.ErrRejected) {
					t.Fatalf("Admit = %v, %v; want reason %v", got, err, tt.reason)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Admit = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestRequiresMet: the rule of manifest key 12 that Admit applies on the
// node and a gateway applies to a node's Hello.
func TestRequiresMet(t *testing.T) {
	tests := []struct {
		name      string
		r         *protocol.Requires
		agent, rt string
		unmet     string // in the error; "" when met
	}{
		{name: "no requires", agent: "0.1.0"},
		{name: "empty requires", r: &protocol.Requires{}, agent: "0.1.0"},
		{name: "agent at the minimum", r: &protocol.Requires{MinAgentVersion: "0.3.0"}, agent: "0.3"},
		{name: "agent below the minimum", r: &protocol.Requires{MinAgentVersion: "0.3.1"}, agent: "0.3.0", unmet: "requires agent 0.3.1, this node runs 0.3.0"},
		{name: "agent version unreadable", r: &protocol.Requires{MinAgentVersion: "0.3.1"}, agent: "dev", unmet: "requires agent 0.3.1"},
		{name: "runtime offered", r: &protocol.Requires{Runtime: "tflm"}, agent: "0.1.0", rt: "tflm"},
		{name: "runtime differs", r: &protocol.Requires{Runtime: "tflm"}, agent: "0.1.0", rt: "onnx", unmet: `requires runtime "tflm", this node offers "onnx"`},
		{name: "no runtime named", r: &protocol.Requires{Runtime: "tflm"}, agent: "0.1.0", unmet: `requires runtime "tflm", this node names none`},
		{name: "both met", r: &protocol.Requires{MinAgentVersion: "0.1", Runtime: "tflm"}, agent: "0.1.0", rt: "tflm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Met(tt.agent, tt.rt)
			if tt.unmet == "" {
				if err != nil {
					t.Fatalf("Met = %v, want nil", err)
				}
				return
			}
			var re *protocol.RejectError
			if !errors.As(err, &re) || re.Code != protocol.ReasonRequires || !strings.Contains(err.Error(), tt.unmet) {
				t.Fatalf("Met = %v, want a reason-7 refusal saying %q", err, tt.unmet)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0}, {"1.2", "1.2.0", 0}, {"1.10.0", "1.9.9", 1}, {"0.3.0", "0.3.1", -1},
		{"v2.0.0", "1.99", 1}, {"1.2.3-rc1", "1.2.3", 0},
	}
	for _, tt := range tests {
		if got, err := protocol.CompareVersions(tt.a, tt.b); err != nil || got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
	}
	if _, err := protocol.CompareVersions("one", "1"); err == nil {
		t.Error("non-numeric version accepted")
	}
}
