package uplink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"edgeota/gateway/internal/outbox"
	"edgeota/protocol"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
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

// emptyQueue is an outbox with nothing to send.
type emptyQueue struct{}

func (emptyQueue) Peek(outbox.Kind, int) ([]outbox.Item, error) { return nil, nil }
func (emptyQueue) Ack([]outbox.Item) error                      { return nil }
func (emptyQueue) Nack(outbox.Kind)                             {}
func (emptyQueue) Stats() outbox.Stats                          { return outbox.Stats{} }

// TestRunEndsWhileARolloutStatusAwaitsItsPUBACK: a gateway stopping while
// its broker hangs (mosquitto frozen with SIGSTOP, so no PUBACK comes) does
// not wait for the rollout status it is publishing. The wait is set to an
// hour, so Run returning at all shows that the stop ended it; before,
// each queued status held the stop for 10 s.
func TestRunEndsWhileARolloutStatusAwaitsItsPUBACK(t *testing.T) {
	b := mqttpeer.Start(t)
	u, err := New(Config{Broker: b.URL(), GatewayID: "gw"}, emptyQueue{})
	if err != nil {
		t.Fatal(err)
	}
	u.retainedTimeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	testutil.Eventually(t, "the uplink connected", u.connected.Load)

	b.Freeze()
	u.PublishRollout("d1", map[string]string{"phase": "running"})
	// The publisher took the status off the queue: it is publishing it to a
	// broker that will not answer.
	testutil.Eventually(t, "the status taken for publishing", func() bool {
		u.rolloutMu.Lock()
		defer u.rolloutMu.Unlock()
		return len(u.rollouts) == 0
	})
	cancel()
	if err := testutil.Receive(t, "Run to return after the stop", done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The status that never got its PUBACK is queued again for the next
	// connection.
	u.rolloutMu.Lock()
	_, kept := u.rollouts["d1"]
	u.rolloutMu.Unlock()
	if !kept {
		t.Error("the unacknowledged rollout status was dropped")
	}
}
