package coapd

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// How the UDP socket is read.
//
// One goroutine, the reader, always reads the socket. After answering a
// batch it waits for the next datagram in one of two ways:
//
//   - The fast wait (Linux): a recvmmsg that sleeps in the kernel until a
//     datagram comes or the socket's receive timeout passes (fastWait,
//     which the kernel rounds up to a clock tick), made as a raw system
//     call, so the goroutine keeps its thread and its P and answers the
//     next datagram at once, as a C server's loop does. A lock-step Block2
//     transfer (a node asks for block n+1 when block n arrives) then costs
//     two system calls per block (recvmmsg, sendmmsg) and no scheduler
//     work; parking in Go's network poller instead costs a recvmmsg that
//     finds nothing, two epoll_pwait, a goroutine wake-up and a pass of
//     the scheduler (batchio_linux.go).
//   - The network poller, as any Go socket read: when the fast wait ended
//     empty, when helpers are awake (load: no P is held waiting then), and
//     after fastYieldEvery fast reads in a row, so that with GOMAXPROCS=1
//     the scheduler still runs timers and other sockets' goroutines at
//     least that often.
//
// A fast wait that ends empty is not retried at once: the reader parks in
// the poller for the next backoff reads, backoff doubling (to
// maxFastBackoff) while fast waits find nothing and reset to one when one
// finds a datagram. Sporadic traffic (a health report a minute, slow radio
// links) or a client the held P itself keeps from running (one in the same
// process with GOMAXPROCS=1) thus costs about one empty fast wait per
// maxFastBackoff reads.
//
// Helpers (WithWorkers: GOMAXPROCS-1 of them) sleep while the traffic is
// light. A read that returns more than one datagram, a sign that
// datagrams queue up faster than one goroutine answers them, announces
// load for loadWindow and wakes a helper; awake helpers read as workers
// always did, all waiting in the network poller, each waking the next on
// a backlog of its own, and go back to sleep when the socket is empty and
// loadWindow has passed without a backlog. Under load nobody waits in the
// kernel (the reader parks in the poller too), so no P is held idle. So a
// single transfer is served by one goroutine with no hand-off, and 500
// concurrent ones by every worker, in batches of up to batchSize.
const (
	defaultFastWait = time.Millisecond
	fastYieldEvery  = 32
	maxFastBackoff  = 1024
	loadWindow      = 10 * time.Millisecond
)

// fastPolicy decides, read by read, whether the reader waits in the
// kernel first.
type fastPolicy struct {
	wait    time.Duration // 0: never
	skip    int           // reads left that park in the poller
	backoff int           // reads to park after the next empty fast wait
	streak  int           // fast waits in a row that found a datagram
}

// next reports whether the next read may wait in the kernel first.
func (p *fastPolicy) next(helpersAwake bool) bool {
	switch {
	case p.wait <= 0 || helpersAwake:
		return false
	case p.skip > 0:
		p.skip--
		return false
	case p.streak >= fastYieldEvery:
		p.streak = 0
		return false
	}
	return true
}

// done records what a fast wait found.
func (p *fastPolicy) done(got bool) {
	if got {
		p.streak++
		p.backoff = 1
		return
	}
	p.streak = 0
	p.skip = max(p.backoff, 1)
	p.backoff = min(2*max(p.backoff, 1), maxFastBackoff)
}

// reader is the goroutine that always reads the socket.
func (s *Server) reader(ctx context.Context, sio *sockIO) error {
	ws := s.newUDPWorker(sio)
	policy := fastPolicy{wait: s.fastWait, backoff: 1}
	for {
		n, tried, got, err := ws.bio.read(policy.next(s.awake.Load() > 0 || s.loaded()))
		if tried || got {
			policy.done(got)
		}
		if got {
			s.stats.fastReads.Add(1)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn("coap read", "err", err)
			continue
		}
		if n > 1 {
			s.backlog()
		}
		s.handleBatch(ws, n)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// helper is a worker that reads only under load.
func (s *Server) helper(ctx context.Context, sio *sockIO) error {
	ws := s.newUDPWorker(sio)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		s.awake.Add(1)
		err := s.helpWhileLoaded(ctx, ws)
		s.awake.Add(-1)
		if err != nil || ctx.Err() != nil {
			return nil
		}
	}
}

// helpWhileLoaded reads and answers until the load has passed; it
// returns an error when the socket is closed.
func (s *Server) helpWhileLoaded(ctx context.Context, ws *workerState) error {
	for {
		n, err := ws.bio.readWhile(s.loaded)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return err
			}
			s.log.Warn("coap read", "err", err)
			continue
		}
		if n == 0 {
			return nil
		}
		if n > 1 {
			s.backlog()
		}
		s.handleBatch(ws, n)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// backlog announces load: a read returned more than one datagram.
func (s *Server) backlog() {
	s.loadUntil.Store(int64(time.Since(s.epoch) + loadWindow))
	if int(s.awake.Load()) >= s.workers-1 {
		return
	}
	select {
	case s.wake <- struct{}{}:
		s.stats.helpersWoken.Add(1)
	default:
	}
}

// loaded reports whether a backlog was seen within loadWindow.
func (s *Server) loaded() bool { return int64(time.Since(s.epoch)) < s.loadUntil.Load() }

func (s *Server) newUDPWorker(sio *sockIO) *workerState {
	ws := &workerState{out: make([]byte, 2048), opts: make(message.Options, 0, 32), bio: newBatchIO(sio, batchSize, s.maxSize+1)}
	ws.resp.buf = make([]byte, 256)
	return ws
}

// handleBatch answers the n datagrams a worker read, in one sendmmsg.
func (s *Server) handleBatch(ws *workerState, n int) {
	ws.inBatch = true
	for i := 0; i < n; i++ {
		data, from, ok := ws.bio.datagram(i)
		if !ok {
			continue
		}
		s.stats.received.Add(1)
		s.handleDatagram(ws, data, from)
	}
	ws.inBatch = false
	s.flush(ws)
}
