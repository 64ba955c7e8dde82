package rollout

import (
	"container/heap"
	"slices"
	"strings"
)

// A rollout keeps counts of its nodes up to date as they change, so that
// the engine's work per node event (the gates, the wave rule, the next
// nodes to assign) does not grow with the size of the rollout: each change
// of a node goes through [Rollout.touch], which takes the node's old
// contribution out of the counts and puts its new one in.

// tally counts a rollout's nodes.
type tally struct {
	states map[NodeState]int
	failed int // nodes that ever failed or timed out
	loops  int // nodes that reverted for a boot loop
	waves  []waveTally
}

// waveTally counts the nodes placed in one wave.
type waveTally struct {
	targeted  int
	pending   int // not done yet
	activated int // activated the new manifest, or already ran it
}

// contrib is what one node adds to the tally.
type contrib struct {
	counted   bool
	state     NodeState
	wave      int
	failed    bool
	loop      bool
	activated bool
}

func (t *tally) add(c contrib, sign int) {
	if !c.counted {
		return
	}
	if t.states == nil {
		t.states = map[NodeState]int{}
	}
	t.states[c.state] += sign
	if c.failed {
		t.failed += sign
	}
	if c.loop {
		t.loops += sign
	}
	if c.wave >= 0 && c.wave < len(t.waves) {
		w := &t.waves[c.wave]
		w.targeted += sign
		if !c.state.done() {
			w.pending += sign
		}
		if c.activated {
			w.activated += sign
		}
	}
}

// eligible counts the nodes that meet the manifest's requires: the N of the
// wave rule.
func (t *tally) eligible() int {
	n := 0
	for s, c := range t.states {
		if s != NodeIneligible {
			n += c
		}
	}
	return n
}

// upTo sums the waves 0..w.
func (t *tally) upTo(w int) waveTally {
	var s waveTally
	for i := 0; i <= w && i < len(t.waves); i++ {
		s.targeted += t.waves[i].targeted
		s.pending += t.waves[i].pending
		s.activated += t.waves[i].activated
	}
	return s
}

func (t *tally) targeted() int { return t.upTo(len(t.waves)).targeted }

// touch records that n changed: it recounts n, files it in the heaps and
// the active set, and marks it to be written.
func (r *Rollout) touch(n *Node) {
	r.t.add(n.c, -1)
	n.c = contrib{}
	if r.Nodes[n.ID] == n {
		n.c = contrib{counted: true, state: n.State, wave: n.Wave, failed: n.Failed, loop: n.BootLoop,
			activated: !n.ActivatedAt.IsZero() || n.State == NodeSucceeded}
		r.t.add(n.c, +1)
	}
	if n.c.counted && (n.State == NodeAssigned || n.State == NodeTrial || n.State == NodeConfirmed) {
		r.active[n] = struct{}{}
	} else {
		delete(r.active, n)
	}
	if n.c.counted && n.State == NodeWaiting && n.Wave < 0 && !n.inUntargeted {
		n.inUntargeted = true
		heap.Push(&r.untargeted, n)
	}
	if n.c.counted && n.State == NodeWaiting && n.Wave >= 0 && !n.inReady {
		n.inReady = true
		heap.Push(&r.ready, n)
	}
	r.dirty[n] = struct{}{}
}

// untargetedNext pops the first untargeted eligible node in wave order,
// nil when none is left.
func (r *Rollout) untargetedNext() *Node {
	for r.untargeted.Len() > 0 {
		n := heap.Pop(&r.untargeted).(*Node)
		n.inUntargeted = false
		if r.Nodes[n.ID] == n && n.State == NodeWaiting && n.Wave < 0 {
			return n
		}
	}
	return nil
}

// readyNext pops the first targeted node still waiting, in wave order, nil
// when none is.
func (r *Rollout) readyNext() *Node {
	for r.ready.Len() > 0 {
		n := heap.Pop(&r.ready).(*Node)
		n.inReady = false
		if r.Nodes[n.ID] == n && n.State == NodeWaiting && n.Wave >= 0 {
			return n
		}
	}
	return nil
}

// insert adds a node new to the rollout, in wave order.
func (r *Rollout) insert(n *Node) {
	if old := r.Nodes[n.ID]; old != nil {
		r.remove(old)
	}
	r.Nodes[n.ID] = n
	i, _ := slices.BinarySearchFunc(r.order, n, waveOrder)
	r.order = slices.Insert(r.order, i, n)
	r.touch(n)
}

// remove takes a node out of the rollout; the next stage deletes its
// record, unless a node that replaces it writes the same key.
func (r *Rollout) remove(n *Node) {
	delete(r.Nodes, n.ID)
	if i, ok := slices.BinarySearchFunc(r.order, n, waveOrder); ok {
		r.order = slices.Delete(r.order, i, i+1)
	}
	r.touch(n)
}

// index rebuilds the order, the tally, the heaps and the active set from
// r.Nodes, after a start or a load, and marks every node to be written.
func (r *Rollout) index() {
	r.order = r.order[:0]
	for _, n := range r.Nodes {
		r.order = append(r.order, n)
	}
	slices.SortFunc(r.order, waveOrder)
	r.t = tally{waves: make([]waveTally, len(r.d.Waves))}
	r.active, r.dirty = map[*Node]struct{}{}, map[*Node]struct{}{}
	r.untargeted, r.ready = r.untargeted[:0], r.ready[:0]
	for _, n := range r.order {
		n.c, n.inUntargeted, n.inReady = contrib{}, false, false
		r.touch(n)
	}
}

// changed returns the nodes touched since the last stage, in wave order.
func (r *Rollout) changed() []*Node {
	out := make([]*Node, 0, len(r.dirty))
	for n := range r.dirty {
		if r.Nodes[n.ID] == n {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, waveOrder)
	return out
}

// activeNodes returns the nodes assigned, on trial or confirmed, in wave
// order.
func (r *Rollout) activeNodes() []*Node {
	out := make([]*Node, 0, len(r.active))
	for n := range r.active {
		out = append(out, n)
	}
	slices.SortFunc(out, waveOrder)
	return out
}

// waveOrder is the order of package wave: by key, then by id.
func waveOrder(a, b *Node) int {
	if a.Key != b.Key {
		if a.Key < b.Key {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// nodeHeap is a min-heap of nodes in wave order (container/heap).
type nodeHeap []*Node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return waveOrder(h[i], h[j]) < 0 }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(*Node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return n
}
