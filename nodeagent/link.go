package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"edgeota/nodeagent/internal/gwlink"
	"edgeota/protocol"
)

// ErrScheme reports a gateway URL this agent cannot speak.
var ErrScheme = errors.New("unsupported gateway URL")

// checkGateway checks the gateway URL against the key: coaps:// needs the
// node's PSK, coap:// takes none.
func checkGateway(cfg Config) (addr string, secure bool, err error) {
	addr, secure, err = gatewayAddr(cfg.Gateway)
	switch {
	case err != nil:
		return "", false, err
	case secure && len(cfg.PSK) == 0:
		return "", false, fmt.Errorf("%w: %s needs the node's pre-shared key (PSK)", ErrScheme, cfg.Gateway)
	case !secure && len(cfg.PSK) > 0:
		return "", false, fmt.Errorf("%w: a pre-shared key was given but %s is plain CoAP: use coaps://", ErrScheme, cfg.Gateway)
	}
	return addr, secure, nil
}

// gatewayAddr turns coaps://host[:port] or coap://host[:port] into
// host:port, and tells whether the link is secure (DTLS).
func gatewayAddr(raw string) (addr string, secure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("%w %q: %v", ErrScheme, raw, err)
	}
	port := "5683"
	switch u.Scheme {
	case "coap":
	case "coaps":
		secure, port = true, "5684"
	default:
		return "", false, fmt.Errorf("%w %q: want coaps://HOST:PORT (or coap:// for development)", ErrScheme, raw)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("%w %q: want coaps://HOST:PORT (or coap:// for development)", ErrScheme, raw)
	}
	host := u.Hostname()
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(host, port), secure, nil
}

// link is the agent's connection to its gateway: reports go through an
// ordered queue so that a slow or absent gateway never stalls the model,
// and assignments arrive as offers.
type link struct {
	client *gwlink.Client
	queue  *reportQueue
	offers chan Offer
	trust  chan []byte
	// changed is signalled after each assignment put in offers: an
	// install in progress gives way to it (Agent.preemptible).
	changed chan struct{}
}

// connect dials the gateway (a UDP socket: nothing is sent yet).
func (a *Agent) connect(ctx context.Context) error {
	if a.link != nil || a.cfg.Gateway == "" {
		return nil
	}
	addr, secure, err := checkGateway(a.cfg)
	if err != nil {
		return err
	}
	opts := []gwlink.Option{gwlink.WithLogger(a.log)}
	if secure {
		opts = append(opts, gwlink.WithPSK(a.cfg.PSK))
	}
	if a.cfg.PollInterval > 0 {
		opts = append(opts, gwlink.WithPollInterval(a.cfg.PollInterval))
	}
	if a.cfg.AckTimeout > 0 {
		opts = append(opts, gwlink.WithTransmission(a.cfg.AckTimeout, 4), gwlink.WithBackoff(a.cfg.AckTimeout, 10*a.cfg.AckTimeout))
	}
	if a.cfg.LockStep {
		opts = append(opts, gwlink.WithQBlock(false))
	}
	if a.cfg.QBlockMaxPayloads > 0 {
		opts = append(opts, gwlink.WithQBlockParams(gwlink.QBlockParams{MaxPayloads: a.cfg.QBlockMaxPayloads}))
	}
	c, err := gwlink.Dial(ctx, addr, a.cfg.NodeID, opts...)
	if err != nil {
		return fmt.Errorf("nodeagent: gateway %s: %w", a.cfg.Gateway, err)
	}
	if secure {
		a.log.Info("talking to the gateway over DTLS", "gateway", a.cfg.Gateway, "psk_identity", a.cfg.NodeID)
	} else {
		a.log.Warn("talking to the gateway over plain CoAP/UDP: development only; manifests are still verified end to end", "gateway", a.cfg.Gateway)
	}
	a.link = &link{client: c, queue: newReportQueue(c, a.log), offers: make(chan Offer, 1), trust: make(chan []byte, 1),
		changed: make(chan struct{}, 1)}
	a.link.queue.delivered = a.cfg.OnDelivered
	a.cfg.Reporter = a.link.queue
	a.cfg.Offers = a.link.offers
	a.cfg.TrustUpdates = a.link.trust
	return nil
}

// runLink runs the report queue and the manifest watch until ctx ends.
func (a *Agent) runLink(ctx context.Context) func() {
	if a.link == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.link.queue.run(ctx) }()
	trusted := make(chan struct{}) // the first trust answer is in a.link.trust
	go func() {
		defer wg.Done()
		// The trust update first: a manifest is judged by the newest
		// trust the gateway has (docs/protocol.md section 5).
		if signed, err := a.link.client.Trust(ctx); err == nil {
			putLatest(a.link.trust, signed)
		} else if ctx.Err() == nil {
			a.log.Warn("trust update not fetched; following it", "err", err)
		}
		close(trusted)
		err := a.link.client.WatchTrust(ctx, func(signed []byte) { putLatest(a.link.trust, signed) })
		if err != nil && ctx.Err() == nil {
			a.log.Error("trust watch ended", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		select {
		case <-trusted:
		case <-ctx.Done():
			return
		}
		err := a.link.client.Watch(ctx, func(signed []byte) {
			o := Offer{Signed: signed, Source: func(m *protocol.Manifest) ImageSource {
				return gatewaySource{Image: a.link.client.ImageFor(m), c: a.link.client}
			}}
			select { // the newest assignment replaces one not yet taken
			case <-a.link.offers:
			default:
			}
			a.link.offers <- o
			select {
			case a.link.changed <- struct{}{}:
			default:
			}
		})
		if err != nil && ctx.Err() == nil {
			a.log.Error("manifest watch ended", "err", err)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		a.link.client.Close()
	}
}

// gatewaySource is the image a manifest names at the gateway, and the
// deltas offered with it (protocol.DeltaPath).
type gatewaySource struct {
	*gwlink.Image
	c *gwlink.Client
}

// Delta returns the delta's bytes at the gateway.
func (s gatewaySource) Delta(o *protocol.DeltaOffer) ImageSource {
	return s.c.ImageAt(protocol.DeltaPath(o.Delta), o.Delta, int64(o.Size))
}

// finalLinkErr tells a source failure that asking again will not mend:
// the gateway does not hold the bytes, serves others under their path, or
// refuses the request.
func finalLinkErr(err error) bool {
	return errors.Is(err, gwlink.ErrNotCached) || errors.Is(err, gwlink.ErrImageChanged) || errors.Is(err, gwlink.ErrRefused)
}

// putLatest puts v in a channel of one, replacing a value not yet taken.
func putLatest[T any](ch chan T, v T) {
	select {
	case <-ch:
	default:
	}
	ch <- v
}

// reportQueue sends a node's Hello, status events and health reports to
// the gateway in order, from its own goroutine. Hellos and status events
// are kept until delivered; when the queue is full the oldest health
// report is dropped (and counted).
type reportQueue struct {
	mu        sync.Mutex
	items     []queued
	wake      chan struct{}
	c         *gwlink.Client
	log       interface{ Warn(string, ...any) }
	dropped   uint64
	delivered func(doc any)
}

type queued struct {
	hello  *protocol.Hello
	status *protocol.StatusEvent
	health *protocol.HealthReport
}

const maxQueued = 1024

func newReportQueue(c *gwlink.Client, log interface{ Warn(string, ...any) }) *reportQueue {
	return &reportQueue{c: c, log: log, wake: make(chan struct{}, 1)}
}

func (q *reportQueue) push(it queued) {
	q.mu.Lock()
	if len(q.items) >= maxQueued {
		for i, old := range q.items {
			if old.health != nil {
				q.items = append(q.items[:i], q.items[i+1:]...)
				q.dropped++
				break
			}
		}
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Hello queues a Hello.
func (q *reportQueue) Hello(_ context.Context, h *protocol.Hello) error {
	q.push(queued{hello: h})
	return nil
}

// Status queues a status event.
func (q *reportQueue) Status(_ context.Context, e *protocol.StatusEvent) error {
	c := *e
	q.push(queued{status: &c})
	return nil
}

// Health queues a health report.
func (q *reportQueue) Health(_ context.Context, r *protocol.HealthReport) error {
	c := *r
	q.push(queued{health: &c})
	return nil
}

func (q *reportQueue) run(ctx context.Context) {
	for {
		q.mu.Lock()
		var it *queued
		if len(q.items) > 0 {
			it = &q.items[0]
		}
		q.mu.Unlock()
		if it == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		var err error
		switch {
		case it.hello != nil:
			err = q.c.Hello(ctx, it.hello)
		case it.status != nil:
			err = q.c.Status(ctx, it.status)
		default:
			err = q.c.Health(ctx, it.health)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, gwlink.ErrRefused) {
			q.log.Warn("gateway unreachable; report kept for later", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			continue
		}
		if err != nil {
			q.log.Warn("gateway refused a report; dropped", "err", err)
		} else if q.delivered != nil {
			switch {
			case it.hello != nil:
				q.delivered(it.hello)
			case it.status != nil:
				q.delivered(it.status)
			default:
				q.delivered(it.health)
			}
		}
		q.mu.Lock()
		q.items = q.items[1:]
		q.mu.Unlock()
	}
}
