package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/firmware-sim/radio"
	"edgeota/nodeagent"
	"edgeota/protocol"
)

// newNode builds a node: its flash (with the initial model installed and
// confirmed when the scenario has one), its radio link, and its life.
func (s *sim) newNode(ctx context.Context, id string, labels map[string]string, slot int64) (*node, error) {
	f, err := flash.New(nodeagent.FlashSize(slot, 4096, 4), flash.WithSeed(int64(s.rng.Uint64())))
	if err != nil {
		return nil, err
	}
	n := &node{id: id, labels: labels, flash: f, restart: make(chan string, 1), seed: int64(s.rng.Uint64())}
	if s.sc.Initial != "" {
		if err := s.install(n, slot, s.models[s.sc.Initial]); err != nil {
			return nil, err
		}
		n.hadModel = true
	}
	link := s.sc.Link
	rl := radio.Link{Loss: link.Loss, Latency: link.Latency, Jitter: link.Jitter, Duplicate: link.Duplicate,
		Reorder: link.Reorder, Bandwidth: link.Bandwidth, Outage: func(time.Time) bool { return time.Now().UnixNano() < n.linkDown.Load() }}
	r, err := radio.New("127.0.0.1:0", s.coapAddr, radio.Config{Up: rl, Down: rl, Seed: s.rng.Uint64()})
	if err != nil {
		return nil, err
	}
	n.relay = r
	go r.Run(ctx)
	s.nodesWG.Add(1)
	go func() {
		defer s.nodesWG.Done()
		s.live(ctx, n, slot)
	}()
	return n, nil
}

// install puts a model on a node's flash as a factory would: written,
// verified, booted and confirmed.
func (s *sim) install(n *node, slot int64, m *model) error {
	a, err := nodeagent.New(nodeagent.Config{NodeID: n.id, Class: simClass, Component: "sim-model", Flash: n.flash,
		Trust: s.trust, SlotSize: slot, JournalBlocks: 4})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := a.Install(ctx, m.signed, nodeagent.ReaderAtSource{R: bytes.NewReader(m.image)}, nil); err != nil {
		return err
	}
	if _, err := a.Device().Boot(); err != nil {
		return err
	}
	return a.Device().Confirm()
}

// live runs a node's agent, restarting it after a power cut or a reboot,
// as the device's power-on would.
func (s *sim) live(ctx context.Context, n *node, slot int64) {
	for ctx.Err() == nil {
		actx, cancel := context.WithCancel(ctx)
		a, err := nodeagent.New(nodeagent.Config{NodeID: n.id, Class: simClass, Component: "sim-model", Labels: n.labels,
			Flash: n.flash, Trust: s.trust, SlotSize: slot, JournalBlocks: 4, Gateway: "coap://" + n.relay.Addr().String(),
			Clock: s.clock, InferenceRate: s.sc.InferenceRate, HealthInterval: s.sc.HealthInterval,
			AckTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Second, ModelSeed: n.seed,
			RetryInterval: time.Duration(2*s.sc.TimeScale) * time.Second,
			OnDelivered: func(doc any) {
				if r, ok := doc.(*protocol.HealthReport); ok {
					s.accepted.Store(fmt.Sprintf("%s/%d/%d", r.NodeID, r.BootCount, r.Number), struct{}{})
				}
			}})
		if err != nil {
			cancel()
			s.log.Error("node agent", "node", n.id, "err", err)
			return
		}
		n.mu.Lock()
		n.agent, n.cancel = a, cancel
		n.mu.Unlock()
		err = a.Boot(actx)
		if err == nil {
			if a.Device().Running() == nil && n.hadModel {
				n.unboot.Add(1)
			}
			if a.Device().Running() != nil {
				n.hadModel = true
			}
			err = a.Run(actx)
		}
		cancel()
		cut := errors.Is(err, flash.ErrPowerCut)
		select {
		case why := <-n.restart:
			cut = cut || why == "cut"
		default:
		}
		if cut {
			n.cuts.Add(1)
		}
		n.flash.PowerOn()
		n.flash.Disarm()
		if ctx.Err() != nil {
			return
		}
	}
}

// powerCut cuts a node's power: at a random flash operation soon if the
// node is writing, or at once.
func (s *sim) powerCut(n *node) {
	before := n.cuts.Load()
	n.flash.CutPowerAt(uint64(1+s.rng.IntN(40)), flash.CutMidway)
	delay := time.Duration(s.rng.IntN(2000)) * time.Millisecond
	go func() {
		time.Sleep(delay)
		n.flash.Disarm()
		if n.cuts.Load() > before {
			return // the cut struck at a flash operation already
		}
		n.mu.Lock()
		cancel := n.cancel
		n.mu.Unlock()
		select {
		case n.restart <- "cut":
		default:
		}
		if cancel != nil {
			cancel()
		}
	}()
}

// reboot restarts a node's agent cleanly.
func (s *sim) reboot(n *node) {
	n.mu.Lock()
	cancel := n.cancel
	n.mu.Unlock()
	select {
	case n.restart <- "reboot":
	default:
	}
	if cancel != nil {
		cancel()
	}
}
