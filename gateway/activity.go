package gateway

import (
	"sync"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// activity aggregates what nodes send between two records in the store:
// the latest health report and status event of each node and their counts.
// Recording them once a second in one transaction keeps the CoAP path free
// of database commits (store.DB.Record).
type activity struct {
	mu    sync.Mutex
	nodes map[string]*store.Activity
	known sync.Map // node id -> struct{}: nodes that said Hello
}

func (a *activity) health(r *protocol.HealthReport, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.entry(r.NodeID)
	c := *r
	x.Health, x.Healths, x.Addr, x.Seen = &c, x.Healths+1, addr, now
}

func (a *activity) status(e *protocol.StatusEvent, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x := a.entry(e.NodeID)
	c := *e
	x.Status, x.Statuses, x.Addr, x.Seen = &c, x.Statuses+1, addr, now
}

func (a *activity) entry(node string) *store.Activity {
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

// take returns and forgets what was aggregated.
func (a *activity) take() []store.Activity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]store.Activity, 0, len(a.nodes))
	for _, x := range a.nodes {
		out = append(out, *x)
	}
	a.nodes = nil
	return out
}

func (g *Gateway) flushActivity() {
	if err := g.store.Record(g.act.take()); err != nil {
		g.log.Error("record node activity", "err", err)
	}
}
