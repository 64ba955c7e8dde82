package fleet

import (
	"bytes"
	"context"
	"errors"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
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
	n := &node{id: ident.id, labels: ident.labels, psk: ident.psk, flash: f, restart: make(chan string, 1), seed: int64(s.rng.Uint64()),
		noDeltas: ident.noDeltas, lockStep: ident.download == scenario.DownloadLockStep}
	if s.sc.Initial != "" {
		if err := s.install(n, slot, s.models[s.sc.Initial]); err != nil {
			return nil, err
		}
		n.hadModel = true
	}
	rl := radioLink(s.sc.Link)
	rl.Outage = func(time.Time) bool { return time.Now().UnixNano() < n.linkDown.Load() }
	rc := radio.Config{Up: rl, Down: rl, Seed: s.rng.Uint64(), MTU: radioMTU}
	if s.sc.Link.SimulatedTime() {
		rc.Clock = s.clock
	}
	r, err := radio.New("127.0.0.1:0", s.coapAddr, rc)
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

// radioLink is one direction of the scenario's link, both being alike.
func radioLink(l scenario.Link) radio.Link {
	return radio.Link{Loss: l.Loss, Latency: l.Latency, Jitter: l.Jitter, Duplicate: l.Duplicate,
		Reorder: l.Reorder, Bandwidth: l.Bandwidth, FrameMTU: l.FrameMTU, FrameOverhead: l.FrameOverhead,
		FrameGap: l.FrameGap, FrameLoss: l.FrameLoss, Hops: l.Hops}
}

// realAckTimeout is the ACK timeout of a link in real time: 300 ms. A link
// with a profile runs in simulated time, and so must the nodes' CoAP
// retransmissions, or each lost datagram would cost a node time_scale
// times too long: see [simAckTimeout].
const realAckTimeout = 300 * time.Millisecond

// minAckTimeout is the shortest real ACK timeout a simulated-time link
// gets: below it, the real time the gateway and the node take to answer
// would fire retransmissions for datagrams that were not lost.
const minAckTimeout = 10 * time.Millisecond

// ackTimeout is the CoAP ACK_TIMEOUT of the nodes' agents, in real time.
func (s *sim) ackTimeout() time.Duration {
	if !s.sc.Link.SimulatedTime() {
		return realAckTimeout
	}
	return max(s.clock.Real(simAckTimeout(radioLink(s.sc.Link))), minAckTimeout)
}

// simAckTimeout is the ACK timeout a node on l should use, in l's time:
// twice the slowest round trip of a 1 KiB block and its request (per-hop
// latency and jitter both ways, and their airtime), at least
// minSimAckTimeout. RFC 7252's 2 s is for a link nobody measured; a
// node configured for its radio uses what the radio needs, and so does
// the gateway's NON_TIMEOUT (RFC 9177: ACK_TIMEOUT).
func simAckTimeout(l radio.Link) time.Duration {
	hops := time.Duration(max(l.Hops, 1))
	rtt := 2*hops*(l.Latency+l.Jitter) + l.Airtime(1100) + l.Airtime(100)
	return max(minSimAckTimeout, 2*rtt)
}

// maxPayloads is RFC 9177's MAX_PAYLOADS for the gateway and the nodes:
// the RFC's 10 on a link without a profile, [simMaxPayloads] on one.
func (s *sim) maxPayloads() int {
	if !s.sc.Link.SimulatedTime() {
		return 0
	}
	return simMaxPayloads(radioLink(s.sc.Link))
}

// simMaxPayloads is the Q-Block2 set size for a link with a profile:
// the 1 KiB blocks the link carries in two round trips (its
// bandwidth-delay product twice over), from the RFC's 10 to the node
// agent's most, 32. A node asks for the next set when a set ends, so a
// set of one round trip's worth of blocks leaves the link idle for a
// round trip every set; RFC 9177 section 7.2 lets MAX_PAYLOADS be
// configured for the link. For the profiles as they come: nbiot and
// ble 32 (ble with a steady 50 ms each way 28), thread 21, subghz 10. A
// link without a bandwidth gets 32.
func simMaxPayloads(l radio.Link) int {
	const rfcDefault, nodeMost = 10, 32
	if l.Bandwidth <= 0 {
		return nodeMost
	}
	rtt := simAckTimeout(l) / 2
	blocks := int(2*rtt.Seconds()*float64(l.Bandwidth)/8/1024) + 1
	return min(max(blocks, rfcDefault), nodeMost)
}

// minSimAckTimeout is the shortest simulated ACK timeout: a link of no
// latency still gets a tenth of a second.
const minSimAckTimeout = 100 * time.Millisecond

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
		AckTimeout: s.ackTimeout(), QBlockMaxPayloads: s.maxPayloads(), LockStep: n.lockStep, PollInterval: s.pollInterval(), Models: simmodel.Runtime{Seed: n.seed}.ForAgent(),
		RetryInterval: time.Duration(2*s.sc.TimeScale) * time.Second, DisableDeltas: n.noDeltas,
		OnStatus: func(e *protocol.StatusEvent) {
			if t := e.Transfer; t != nil && e.State == protocol.StateVerified {
				c := *t
				n.transfer.Store(&c)
				n.fetched.Add(t.Fetched)
			}
			switch e.State {
			case protocol.StateDownloading:
				n.dlStart.Store(s.clock.Now().UnixNano())
				n.dlTook.Store(0)
			case protocol.StateDownloaded:
				if start := n.dlStart.Load(); start != 0 {
					n.dlTook.Store(s.clock.Now().UnixNano() - start)
				}
			case protocol.StateConfirmed:
				n.confirmed.Store(int64(s.clock.Elapsed()))
			}
		},
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
