package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/test/testutil"
)

// warnCounter is a slog handler that counts the warnings whose message
// has a prefix, and drops every record.
type warnCounter struct {
	prefix string
	n      *atomic.Int64
}

func (w warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, w.prefix) {
		w.n.Add(1)
	}
	return nil
}
func (w warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnCounter) WithGroup(string) slog.Handler      { return w }

// TestNodeIDFlood: with the registry at --max-nodes (50, all known), a
// flood of Hellos from new node ids, over real UDP on loopback, is
// answered 5.03 with Max-Age 60 and counted as registry_full, while a
// known node says Hello, posts a status event, reads its manifest and
// downloads an image as before; the database still holds the 50 nodes,
// and the log has a warning a minute, not one per refusal.
func TestNodeIDFlood(t *testing.T) {
	const bound = 50
	var warns atomic.Int64
	dir := t.TempDir()
	e := newEnv(t, opts{dir: dir, maxNodes: bound, limits: gateway.Limits{SourceRate: -1, NodeRate: -1},
		logger: slog.New(warnCounter{prefix: "hellos from new nodes refused", n: &warns})})
	began := time.Now()
	c := e.dial()
	for i := range bound {
		hello(t, c, fmt.Sprintf("known-%d", i))
	}
	m := e.model(1, 20_000)
	if err := e.push(m.signed, m.image); err != nil {
		t.Fatal(err)
	}
	e.assign(m.signed, []string{"known-0"}, false)

	const refusedMetric = `edgeota_refused_total{reason="registry_full"}`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var answered atomic.Int64
	wrong := make(chan string, 1) // the first answer that is not the refusal
	flooded := make(chan struct{})
	flooder := e.dial()
	go func() {
		defer close(flooded)
		// At most 1,000 Hellos a second (one a millisecond, each waiting
		// for its answer), each from a new node id: a bounded load, 20
		// times the registry every second.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("flood-%d", n)
			b, err := protocol.Marshal(&protocol.Hello{NodeID: id, Class: testClass, AgentVersion: "0.1.0", Component: "kws"})
			if err != nil {
				panic(err)
			}
			r, err := flooder.Post(ctx, protocol.NodePath(id, protocol.ResHello), message.AppCBOR, bytes.NewReader(b))
			if err != nil {
				return // ctx ended, or the test's ceiling
			}
			if ma, _ := r.Options().GetUint32(message.MaxAge); r.Code() != codes.ServiceUnavailable || ma != 60 {
				select {
				case wrong <- fmt.Sprintf("%s: %v with Max-Age %d", id, r.Code(), ma):
				default:
				}
			}
			answered.Add(1)
		}
	}()
	testutil.Eventually(t, "the flood to be refused", func() bool {
		return len(wrong) > 0 || metricValue(t, e, refusedMetric) >= 100
	})
	checkFlood := func() {
		t.Helper()
		select {
		case w := <-wrong:
			t.Fatalf("a flood Hello was answered %s, want 5.03 with Max-Age 60", w)
		default:
		}
	}
	checkFlood()

	during := answered.Load()
	hello(t, c, "known-0")
	st, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "known-0", State: protocol.StateIdle, BootCount: 1, Number: 1})
	if r := post(t, c, protocol.NodePath("known-0", protocol.ResStatus), message.AppCBOR, st); r.Code() != codes.Changed {
		t.Errorf("known node's status event during the flood: %v", r.Code())
	}
	if r, err := c.Get(ctxT(t), protocol.NodePath("known-0", protocol.ResManifest)); err != nil {
		t.Fatal(err)
	} else if body, _ := r.ReadBody(); r.Code() != codes.Content || !bytes.Equal(body, m.signed) {
		t.Errorf("known node's manifest during the flood: %v, %d bytes", r.Code(), len(body))
	}
	if got := fetch(t, c, m.m.Digest, 1024); !bytes.Equal(got, m.image) {
		t.Errorf("download during the flood: %d bytes differ from the image's %d", len(got), len(m.image))
	}
	testutil.Eventually(t, "the flood to go on after the known node's requests", func() bool {
		return answered.Load() > during
	})
	cancel()
	<-flooded
	checkFlood()
	// Every Hello answered was counted; one more may have been counted
	// whose answer the flooder no longer read.
	sent, refused := answered.Load(), metricValue(t, e, refusedMetric)
	if refused < float64(sent) || refused > float64(sent+1) {
		t.Errorf("registry_full counted %v refusals, the flood had %d answered", refused, sent)
	}
	if n := metricValue(t, e, "edgeota_nodes"); n != bound {
		t.Errorf("edgeota_nodes = %v, want %d", n, bound)
	}
	if l := metricValue(t, e, `edgeota_limit{name="max_nodes"}`); l != bound {
		t.Errorf(`edgeota_limit{name="max_nodes"} = %v, want %d`, l, bound)
	}
	// One warning for the first refusal, then at most one a minute.
	if w, most := warns.Load(), 1+int64(time.Since(began)/time.Minute); w < 1 || w > most {
		t.Errorf("%d warnings for %d refusals, want 1 to %d", w, sent, most)
	}

	e.stop()
	db, err := store.Open(filepath.Join(dir, gateway.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nodes, err := db.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !strings.HasPrefix(n.ID, "known-") {
			t.Errorf("the database holds %s", n.ID)
		}
	}
	if len(nodes) != bound {
		t.Errorf("the database holds %d nodes, want %d", len(nodes), bound)
	}
	t.Logf("%d Hellos of new nodes refused, %d warnings logged", sent, warns.Load())
}
