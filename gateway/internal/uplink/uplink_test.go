package uplink

import (
	"fmt"
	"testing"

	"edgeota/gateway/internal/outbox"
	"edgeota/protocol"
)

// TestBatchPayloadDecodes: a batch is the items' CBOR behind an array head,
// and decodes as the contract's health batch for every head size.
func TestBatchPayloadDecodes(t *testing.T) {
	for _, n := range []int{1, 23, 24, 255, 256, 1024} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			items := make([]outbox.Item, n)
			for i := range items {
				b, err := protocol.Marshal(&protocol.HealthReport{NodeID: fmt.Sprintf("n%d", i%7), Inferences: uint64(i), Number: uint64(i + 1)})
				if err != nil {
					t.Fatal(err)
				}
				items[i] = outbox.Item{Kind: outbox.KindHealth, Data: b}
			}
			rs, err := protocol.DecodeHealthBatch(batchPayload(items))
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != n || rs[n-1].Number != uint64(n) {
				t.Fatalf("decoded %d reports", len(rs))
			}
			// Re-encoding the decoded batch gives the same bytes: the
			// gateway forwards the nodes' deterministic CBOR as it is.
			again, _ := protocol.Marshal(rs)
			if string(again) != string(batchPayload(items)) {
				t.Fatal("the batch is not the deterministic encoding of its reports")
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{GatewayID: "gw"}, nil); err == nil {
		t.Fatal("no broker accepted")
	}
	u, err := New(Config{Broker: "tcp://127.0.0.1:1", GatewayID: "gw", BatchMax: 5000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.cfg.BatchMax != MaxBatch || u.Topic(protocol.TopicHealth) != "edgeota/v1/gw/gw/health" {
		t.Fatalf("config %+v", u.cfg)
	}
}
