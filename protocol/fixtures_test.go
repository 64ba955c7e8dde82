package protocol_test

import (
	"edgeota/protocol"
)

func u64(v uint64) *uint64 { return &v }

var testClass = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

func testDigest(b byte) protocol.Digest {
	var d protocol.Digest
	for i := range d {
		d[i] = b + byte(i)
	}
	return d
}

func sampleManifest() *protocol.Manifest {
	return &protocol.Manifest{
		Format: 1, Seq: 42, Component: "kws-model", Version: "1.4.0",
		Digest: testDigest(0xa0), Size: 65536, Class: testClass, Epoch: 3,
		Probation: &protocol.Probation{Seconds: 600, MinInferences: 1000, MaxErrorPermille: u64(20),
			MaxP99Micros: u64(80000), MaxRAMBytes: u64(262144), MaxCPUPermille: u64(700)},
		Issued:   1795000000,
		Requires: &protocol.Requires{MinAgentVersion: "0.3.0"},
	}
}

func minimalManifest() *protocol.Manifest {
	return &protocol.Manifest{Format: 1, Seq: 1, Component: "kws-model", Version: "1.0.0",
		Digest: testDigest(0x10), Size: 1, Class: testClass, Epoch: 0}
}

func sampleHello() *protocol.Hello {
	return &protocol.Hello{
		NodeID: "node-0001", Class: testClass,
		Labels:     map[string]string{"region": "us-east", "hw": "rev2"},
		RunningSeq: 41, RunningDigest: testDigest(0x50), ActiveSlot: protocol.SlotB,
		AgentVersion: "0.3.1", EpochFloor: 2, ActiveState: protocol.SlotConfirmed,
		Other:     &protocol.OtherSlot{Seq: 40, Digest: testDigest(0x30), State: protocol.SlotConfirmed, Epoch: 2},
		Component: "kws-model",
	}
}

func sampleHealth() *protocol.HealthReport {
	return &protocol.HealthReport{
		NodeID: "node-0001", UptimeSeconds: 3600, RunningSeq: 42, ActiveSlot: protocol.SlotA,
		Inferences: 600, Errors: 3, LatencyP50Micros: 12000, LatencyP99Micros: 41000,
		CPUPermille: 350, RAMBytes: 180224, BootCount: 7, Time: 1795000600, Number: 12,
		Metrics: map[string]int64{"low_confidence_permille": 14},
	}
}

func sampleStatus() *protocol.StatusEvent {
	return &protocol.StatusEvent{
		NodeID: "node-0001", State: protocol.StateReverted, Seq: 42, Digest: testDigest(0xa0),
		Reason: "p99 latency 93000 us over 80000", BytesReceived: 65536,
		Code: protocol.ReasonProbationLatency, BootCount: 8, Number: 3,
	}
}

func sampleStatusTransfer() *protocol.StatusEvent {
	return &protocol.StatusEvent{
		NodeID: "node-0001", State: protocol.StateDownloading, Seq: 42, Digest: testDigest(0xa0),
		BootCount: 8, Number: 4,
		Transfer: &protocol.Transfer{Kind: protocol.TransferDelta, Delta: testDigest(0xd0), Fetched: 4096},
	}
}

func sampleOffer() *protocol.DeltaOffer {
	return &protocol.DeltaOffer{Format: 1, Base: testDigest(0x50), Delta: testDigest(0xd0), Size: 6144}
}

func sampleDeployment(manifest []byte) *protocol.Deployment {
	return &protocol.Deployment{
		ID: "kws-1.4.0-rollout", Seq: 7, Manifest: manifest,
		Origin: "https://models.example.com/kws-1.4.0.bin",
		Cohort: "region:us-east AND hw:rev2",
		Waves:  []protocol.Wave{{BasisPoints: 100, BakeSeconds: 600}, {BasisPoints: 2500, BakeSeconds: 1800}, {BasisPoints: 10000, BakeSeconds: 0}},
		Gates: protocol.Gates{MaxFailed: u64(2), MaxErrorPermille: u64(20), MaxLatencyP99Micros: u64(80000),
			MaxLatencyRegressionPermille: u64(1200), MinReports: u64(3), MaxBootLoops: u64(0),
			Metrics: map[string]int64{"low_confidence_permille": 50}},
		OnFailure: protocol.FailureRollback, NodeTimeoutSeconds: 1800, MaxConcurrent: 20,
		Gateways: []string{"gw-plant-1"}, Issued: 1795000000, Expires: 1795259200,
	}
}
