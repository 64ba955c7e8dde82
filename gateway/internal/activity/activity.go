// Package activity aggregates what nodes send between two records in the
// gateway's database: the latest health report and status event of each
// node and their counts, when and from where each node was last heard, and
// which nodes said Hello. Recording them once a second in one transaction
// ([Recorder.Flush], store.DB.Record) keeps the CoAP path free of database
// commits, and writes a node's record at most once a second however often
// it speaks.
//
// What is recorded here may be lost in a crash (at most the last second of
// it), which is why it holds nothing the gateway promises to keep: the
// health reports and status events themselves are forwarded durably
// through the outbox before their 2.04 when the uplink is on, and the
// rollouts keep their own durable state; a Hello that changes the node's
// record is stored before its 2.04 (store.DB.PutHello), one that repeats
// it only refreshes LastSeen here ([Recorder.Seen]).
package activity

import (
	"log/slog"
	"sync"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// Store records the aggregated activity: the gateway's database.
type Store interface {
	Record(acts []store.Activity) error
}

// Recorder aggregates node activity. It is safe for concurrent use.
type Recorder struct {
	st    Store
	log   *slog.Logger
	mu    sync.Mutex
	nodes map[string]*store.Activity
	known sync.Map // node id -> struct{}: nodes that said Hello
}

// New returns a recorder flushing to st, that knows the nodes known; log
// receives the failures (nil: discard).
func New(st Store, known []string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{st: st, log: log}
	for _, n := range known {
		r.known.Store(n, struct{}{})
	}
	return r
}

// Hello records that node said Hello: its reports are accepted from now on.
func (a *Recorder) Hello(node string) { a.known.Store(node, struct{}{}) }

// Known reports whether node said Hello.
func (a *Recorder) Known(node string) bool {
	_, ok := a.known.Load(node)
	return ok
}

// Health aggregates a health report that came from addr at now.
func (a *Recorder) Health(r *protocol.HealthReport, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.entry(r.NodeID)
	c := *r
	x.Health, x.Healths, x.Addr, x.Seen = &c, x.Healths+1, addr, now
}

// Status aggregates a status event that came from addr at now.
func (a *Recorder) Status(e *protocol.StatusEvent, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.entry(e.NodeID)
	c := *e
	x.Status, x.Statuses, x.Addr, x.Seen = &c, x.Statuses+1, addr, now
	if t := store.TransferOf(e); t != nil {
		x.Transfer = t
	}
}

// Seen records that node was heard from addr at now, with nothing else
// to record: a Hello that repeats what the database holds.
func (a *Recorder) Seen(node, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.entry(node)
	x.Addr, x.Seen = addr, now
}

func (a *Recorder) entry(node string) *store.Activity {
	if a.nodes == nil {
		a.nodes = map[string]*store.Activity{}
	}
	x := a.nodes[node]
	if x == nil {
		x = &store.Activity{Node: node}
		a.nodes[node] = x
	}
	return x
}

// Flush records what was aggregated in the store and forgets it.
func (a *Recorder) Flush() {
	a.mu.Lock()
	out := make([]store.Activity, 0, len(a.nodes))
	for _, x := range a.nodes {
		out = append(out, *x)
	}
	a.nodes = nil
	a.mu.Unlock()
	if err := a.st.Record(out); err != nil {
		a.log.Error("record node activity", "err", err)
	}
}
