package fleet

import (
	"bytes"
	"context"
	"errors"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/firmware-sim/radio"
	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
)

// radioMTU is the largest datagram a node's radio carries: IPv6's minimum
// MTU, which 6LoWPAN radios provide. A CoAP block of 1024 bytes with its
// header, options and a DTLS record fits. The relay's two reading
// goroutines hold a buffer of this size each: UDP's 64 KiB would put 128
// KiB of stack under every node.
const radioMTU = 1280

// newNode builds the i-th node: its flash (with the initial model
// installed and confirmed when the scenario has one), its radio link, its
// provisioning service on the air (provision: ble), and its life.
func (s *sim) newNode(ctx context.Context, ident identity, i int, slot int64) (*node, error) {
	f, err := flash.New(nodeagent.FlashSize(slot, 4096, 4), flash.WithSeed(int64(s.rng.Uint64())))
	if err != nil {
		return nil, err
	}
	n := &node{id: ident.id, labels: ident.labels, psk: ident.psk, flash: f, restart: make(chan string, 1), seed: int64(s.rng.Uint64())}
	if s.sc.Initial != "" {
		if err := s.install(n, slot, s.models[s.sc.Initial]); err != nil {
			return nil, err
		}
		n.hadModel = true
	}
	link := s.sc.Link
	rl := radio.Link{Loss: link.Loss, Latency: link.Latency, Jitter: link.Jitter, Duplicate: link.Duplicate,
		Reorder: link.Reorder, Bandwidth: link.Bandwidth, Outage: func(time.Time) bool { return time.Now().UnixNano() < n.linkDown.Load() }}
	r, err := radio.New("127.0.0.1:0", s.coapAddr, radio.Config{Up: rl, Down: rl, Seed: s.rng.Uint64(), MTU: radioMTU})
	if err != nil {
		return nil, err
	}
	n.relay = r
	go r.Run(ctx)
	if s.air != nil {
		if err := s.advertise(ctx, n, ident.secret, i); err != nil {
			r.Close()
			return nil, err
		}
	}
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
	a, err := nodeagent.New(nodeagent.Config{NodeID: n.id, Class: simClass, Component: simComponent, Flash: n.flash,
		Trust: s.trust, Models: simmodel.Runtime{}.ForAgent(), SlotSize: slot, JournalBlocks: 4})
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

// pollInterval is how often a simulated node polls its manifest besides
// observing it (real time): every minute of simulated time, between 2 and
// 10 seconds. A node that missed a notification (a lossy link loses
// non-confirmable ones) learns of its assignment by its next poll; at 10 s
// of real time, as before, that was 10 minutes of simulated time at time
// scale 60, the node_timeout of many scenarios, and such a node timed out
// while it installed.
func (s *sim) pollInterval() time.Duration {
	return min(max(time.Minute/time.Duration(max(s.sc.TimeScale, 1)), 2*time.Second), 10*time.Second)
}

// agentConfig is the configuration of a node's agent: configured at the
// factory, or, with provision: ble, the parts the provisioning leaves to
// the device (provisioning.Apply adds the rest).
func (s *sim) agentConfig(n *node, slot int64) nodeagent.Config {
	cfg := nodeagent.Config{NodeID: n.id, Class: simClass, Component: simComponent, Labels: n.labels,
		Flash: n.flash, Trust: s.trust, SlotSize: slot, JournalBlocks: 4, Gateway: s.gatewayURI(n),
		Clock: s.clock, InferenceRate: s.sc.InferenceRate, HealthInterval: s.sc.HealthInterval,
		AckTimeout: 300 * time.Millisecond, PollInterval: s.pollInterval(), Models: simmodel.Runtime{Seed: n.seed}.ForAgent(),
		RetryInterval: time.Duration(2*s.sc.TimeScale) * time.Second,
		OnDelivered: func(doc any) {
			if until := n.linkDown.Load(); until != 0 && time.Now().UnixNano() >= until {
				n.heard.Add(1) // accepted after the link came back
			}
			switch d := doc.(type) {
			case *protocol.HealthReport:
				s.health.mark(reportID{d.NodeID, d.BootCount, d.Number}, reportAccepted)
			case *protocol.Hello:
				n.said.Store(true)
			case *protocol.StatusEvent:
				if d.State == protocol.StateProvisioned {
					n.provDone.Store(true)
				}
			}
		}}
	if s.dtls {
		cfg.PSK = n.psk
	}
	return cfg
}

// gatewayURI is the gateway's URI as a node sees it: its radio link's end.
func (s *sim) gatewayURI(n *node) string {
	scheme := "coap://"
	if s.dtls {
		scheme = "coaps://"
	}
	return scheme + n.relay.Addr().String()
}

// live runs a node's life: a configured node's agent at once; a
// factory-fresh one's (provision: ble) under provisioning.Supervise, as
// `edgeota node --ble` runs it, once a bundle is committed.
func (s *sim) live(ctx context.Context, n *node, slot int64) {
	if n.prov == nil {
		s.power(ctx, n, s.agentConfig(n, slot), nil)
		return
	}
	var first *provisioning.NodeConfig
	if pc, ok := n.prov.Current(); ok {
		first = &pc
	}
	err := provisioning.Supervise(ctx, s.log, first, n.commits, func(ctx context.Context, pc *provisioning.NodeConfig, committed bool) error {
		if pc == nil {
			return nil // nothing to talk to before provisioning
		}
		cfg := s.agentConfig(n, slot)
		if err := provisioning.Apply(&cfg, *pc); err != nil {
			return err
		}
		var p *nodeagent.Provisioning
		if committed {
			p = &nodeagent.Provisioning{Actor: pc.Signer, Serial: pc.Serial}
		}
		s.power(ctx, n, cfg, p)
		return nil
	})
	if err != nil {
		s.log.Error("node supervisor", "node", n.id, "err", err)
	}
}

// power runs a node's agent until ctx ends, restarting it after a power
// cut or a reboot, as the device's power-on would. prov, when set, is the
// provisioning its agents report until one has delivered the report.
func (s *sim) power(ctx context.Context, n *node, cfg nodeagent.Config, prov *nodeagent.Provisioning) {
	for ctx.Err() == nil {
		actx, cancel := context.WithCancel(ctx)
		cfg.Provisioned = nil
		if prov != nil && !n.provDone.Load() {
			cfg.Provisioned = prov
		}
		a, err := nodeagent.New(cfg)
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
