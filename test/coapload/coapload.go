// Package coapload is the load tool of edgeota's transfer benchmarks: many
// nodes fetching one resource at once, each a lock-step Block2 loop of
// confirmable GETs on its own UDP socket, retransmitted on a timeout that
// doubles (RFC 7252 section 4.2), so that a server which drops datagrams
// at its socket is measured by the time the drops cost, not by a failure.
//
// It speaks to any CoAP server (the edgeota gateway, libcoap's
// coap-server) with go-coap's codec and nothing of edgeota's, and it
// reads a server process's CPU time from /proc, so that a benchmark can
// put two servers side by side in one run.
package coapload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Config is how the nodes fetch.
type Config struct {
	// Nodes is how many fetch at once, each on its own socket.
	Nodes int
	// Path is the resource's Uri-Path, with a leading slash.
	Path string
	// Size is the resource's size in bytes; a fetch of another size fails.
	Size int
	// AckTimeout is the first retransmission timeout (default 1 s); it
	// doubles at each retransmission.
	AckTimeout time.Duration
	// MaxRetransmit is how many times a request is sent again before the
	// fetch fails (default 4, RFC 7252's MAX_RETRANSMIT).
	MaxRetransmit int
}

// Result is what one run measured.
type Result struct {
	// Elapsed is from the first request to the last block of the last node.
	Elapsed time.Duration
	// Bytes and Blocks are the payload received, all nodes together.
	Bytes, Blocks int64
	// Retransmits counts requests sent again after a timeout: datagrams
	// the server dropped or answered too late.
	Retransmits int64
}

// BlocksPerSecond is the aggregate goodput in blocks.
func (r Result) BlocksPerSecond() float64 { return float64(r.Blocks) / r.Elapsed.Seconds() }

// Run fetches cfg.Path from server with cfg.Nodes nodes at once and
// returns when all have the whole resource, or with the first failure.
func Run(ctx context.Context, server *net.UDPAddr, cfg Config) (Result, error) {
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = time.Second
	}
	if cfg.MaxRetransmit == 0 {
		cfg.MaxRetransmit = 4
	}
	nodes := make([]*node, cfg.Nodes)
	for i := range nodes {
		c, err := net.DialUDP("udp", nil, server)
		if err != nil {
			for _, n := range nodes[:i] {
				n.conn.Close()
			}
			return Result{}, fmt.Errorf("coapload: node %d: %w", i, err)
		}
		nodes[i] = &node{conn: c, cfg: &cfg, mid: uint16(i * 7919)}
	}
	defer func() {
		for _, n := range nodes {
			n.conn.Close()
		}
	}()
	var (
		res     Result
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		bytes   atomic.Int64
		blocks  atomic.Int64
		retrans atomic.Int64
	)
	start := time.Now()
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, nb, err := n.fetch(ctx)
			bytes.Add(int64(got))
			blocks.Add(nb)
			retrans.Add(n.retransmits)
			if err == nil && got != cfg.Size {
				err = fmt.Errorf("coapload: fetched %d bytes of %s, want %d", got, cfg.Path, cfg.Size)
			}
			if err != nil {
				errOnce.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Bytes, res.Blocks, res.Retransmits = bytes.Load(), blocks.Load(), retrans.Load()
	return res, first
}

type node struct {
	conn        *net.UDPConn
	cfg         *Config
	mid         uint16
	retransmits int64
}

// ErrNoAnswer is returned when a request went unanswered MaxRetransmit+1 times.
var ErrNoAnswer = errors.New("coapload: no answer")

func (n *node) fetch(ctx context.Context) (int, int64, error) {
	out, in, opt := make([]byte, 256), make([]byte, 2048), make([]byte, 128)
	total, blocks := 0, int64(0)
	for num := int64(0); ; num++ {
		if err := ctx.Err(); err != nil {
			return total, blocks, err
		}
		n.mid++
		opts, used, err := message.Options{}.SetPath(opt, n.cfg.Path)
		if err != nil {
			return total, blocks, err
		}
		v, err := blockwise.EncodeBlockOption(blockwise.SZX1024, num, false)
		if err != nil {
			return total, blocks, err
		}
		opts, _, err = opts.SetUint32(opt[used:], message.Block2, v)
		if err != nil {
			return total, blocks, err
		}
		m := message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: int32(n.mid),
			Token: []byte{byte(n.mid >> 8), byte(n.mid)}, Options: opts}
		k, err := coder.DefaultCoder.Encode(m, out)
		if err != nil {
			return total, blocks, err
		}
		payload, more, err := n.exchange(out[:k], in)
		if err != nil {
			return total, blocks, fmt.Errorf("block %d of %s: %w", num, n.cfg.Path, err)
		}
		total += payload
		blocks++
		if !more {
			return total, blocks, nil
		}
	}
}

// exchange sends a request until its acknowledgement arrives and returns
// the block's payload length and whether more blocks follow.
func (n *node) exchange(req, in []byte) (int, bool, error) {
	timeout := n.cfg.AckTimeout
	for try := 0; try <= n.cfg.MaxRetransmit; try++ {
		if try > 0 {
			n.retransmits++
		}
		if _, err := n.conn.Write(req); err != nil {
			return 0, false, err
		}
		deadline := time.Now().Add(timeout)
		timeout *= 2
		for {
			n.conn.SetReadDeadline(deadline)
			r, err := n.conn.Read(in)
			if err != nil {
				break // timed out: send again
			}
			resp := message.Message{Options: make(message.Options, 0, 8)}
			if _, err := coder.DefaultCoder.Decode(in[:r], &resp); err != nil || resp.MessageID != int32(n.mid) {
				continue // a late answer to an earlier request
			}
			if resp.Code != codes.Content {
				return 0, false, fmt.Errorf("answer %v", resp.Code)
			}
			bv, err := resp.Options.GetUint32(message.Block2)
			if err != nil {
				return len(resp.Payload), false, nil // the whole resource in one answer
			}
			_, _, more, err := blockwise.DecodeBlockOption(bv)
			if err != nil {
				return 0, false, err
			}
			return len(resp.Payload), more, nil
		}
	}
	return 0, false, ErrNoAnswer
}

// CPUTime returns the CPU time a process has used so far: the sum of
// its threads' time on a CPU from /proc/PID/task/*/schedstat (in
// nanoseconds), or, where the kernel keeps no schedstat, user plus system
// time from /proc/PID/stat at the clock tick (10 ms). Linux only.
func CPUTime(pid int) (time.Duration, error) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("coapload: %s: %q", t, raw)
		}
		ns += v
	}
	if len(tasks) > 0 {
		return time.Duration(ns), nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("coapload: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("coapload: short /proc/%d/stat", pid)
	}
	// Fields 14 and 15 of stat(5) (utime, stime) are 12 and 13 here.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("coapload: /proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}
