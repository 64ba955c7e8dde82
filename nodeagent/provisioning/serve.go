package provisioning

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/att"
	"github.com/go-ble/ble/linux/gatt"

	"edgeota/protocol/provision"
)

// ATT opcodes the guard looks at (Bluetooth Core Vol 3 Part F 3.4.8).
const (
	opErrorRsp     = 0x01
	opWriteReq     = 0x12
	opPrepareWrite = 0x16
	opExecuteWrite = 0x18
	opWriteCmd     = 0x52
)

// guard sits between the link and go-ble's ATT server and answers the
// requests that crash the pinned server: Execute Write without a prepared
// write dereferences nil, and a CCCD write shorter
// than 2 bytes slices out of range. Prepare and Execute Write get "request
// not supported" (the service has no long values); a write of other than 2
// bytes to any handle but the bundle and control values gets "invalid
// attribute value length". Every other PDU passes untouched.
type guard struct {
	ble.Conn
	writable map[uint16]bool
}

func (g *guard) Read(p []byte) (int, error) {
	for {
		n, err := g.Conn.Read(p)
		if err != nil || n == 0 {
			return n, err
		}
		rsp, drop := g.screen(p[:n])
		if !drop {
			return n, nil
		}
		if rsp != nil {
			if _, err := g.Conn.Write(rsp); err != nil {
				return 0, err
			}
		}
	}
}

// screen returns whether the PDU must not reach the server, and the error
// response to send instead (nil for a command, which has no response).
func (g *guard) screen(pdu []byte) (rsp []byte, drop bool) {
	switch op := pdu[0]; op {
	case opPrepareWrite, opExecuteWrite:
		return errorRsp(op, 0, ble.ErrReqNotSupp), true
	case opWriteReq, opWriteCmd:
		if len(pdu) < 3 {
			return nil, false // the server refuses it itself
		}
		h := binary.LittleEndian.Uint16(pdu[1:])
		if g.writable[h] || len(pdu)-3 == 2 {
			return nil, false
		}
		if op == opWriteCmd {
			return nil, true
		}
		return errorRsp(op, h, ble.ErrInvalAttrValueLen), true
	}
	return nil, false
}

func errorRsp(op byte, h uint16, code ble.ATTError) []byte {
	return []byte{opErrorRsp, op, byte(h), byte(h >> 8), byte(code)}
}

// advName is the GAP device name and advertised name of a node: its id,
// cut to fit a read at the default MTU (go-ble's static values longer than
// MTU-1 crash its server).
func (s *Service) advName() string {
	n := s.cfg.NodeID
	if len(n) > provision.MaxValueLen {
		n = n[:provision.MaxValueLen]
	}
	return n
}

// ServeConn serves the provisioning service, with the GAP and GATT
// services, to the central at the other end of conn with go-ble's ATT
// server, until the link is closed or ctx ends (which closes it). Each
// connection has its own transfer: a provisioning cut off before commit
// leaves nothing behind.
func (s *Service) ServeConn(ctx context.Context, conn ble.Conn) error {
	conn.SetContext(withSession(conn.Context()))
	conn.SetRxMTU(ble.MaxMTU)
	srv, err := gatt.NewServerWithName(s.advName())
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	svc := s.GATT()
	if err := srv.AddService(svc); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	g := &guard{Conn: conn, writable: map[uint16]bool{}}
	for _, c := range svc.Characteristics {
		if c.WriteHandler != nil {
			g.writable[c.ValueHandle] = true
		}
	}
	as, err := att.NewServer(srv.DB(), g)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		as.Loop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		conn.Close()
		<-done
		return ctx.Err()
	}
}

// Peripheral is what [Service.Serve] needs of a BLE adapter in the
// peripheral role: cmd/edgeota opens a Linux HCI adapter that implements
// it. Its owner opens and closes it; Serve does neither.
type Peripheral interface {
	// Advertise advertises name and the services until StopAdvertising.
	Advertise(name string, services ...ble.UUID) error
	// StopAdvertising stops advertising.
	StopAdvertising() error
	// Accept waits for a central to connect and returns the link; it
	// returns an error once the adapter is closed.
	Accept() (ble.Conn, error)
	// Addr is the adapter's address, for the log.
	Addr() string
}

// Serve serves the provisioning service on a BLE adapter: it advertises
// the node id and the service UUID, and serves each central that connects
// with [Service.ServeConn] (with its guard against go-ble's crashing
// requests), until ctx ends or accepting fails. When ctx ends it
// disconnects the centrals (waiting at most 5 seconds for them) and stops
// advertising before it returns; the caller then closes the adapter.
func (s *Service) Serve(ctx context.Context, p Peripheral) error {
	if err := p.Advertise(s.advName(), ble.MustParse(provision.ServiceUUID)); err != nil {
		return fmt.Errorf("provisioning: advertise: %w", err)
	}
	s.log.Info("advertising the provisioning service", "name", s.advName(), "addr", p.Addr())
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		closing bool
	)
	defer func() {
		mu.Lock()
		closing = true
		mu.Unlock()
		// Disconnect the centrals while the adapter is open (their links
		// end on the controller's disconnection event), bounded in case it
		// never comes; the caller closes the adapter after.
		cancel()
		served := make(chan struct{})
		go func() { wg.Wait(); close(served) }()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			s.log.Warn("a central did not disconnect; leaving it to the adapter's close")
		}
		p.StopAdvertising()
	}()
	accepted := make(chan error, 1)
	go func() {
		for {
			l2c, err := p.Accept()
			if err != nil {
				accepted <- err
				return
			}
			mu.Lock()
			if closing {
				mu.Unlock()
				l2c.Close()
				continue
			}
			wg.Add(1)
			mu.Unlock()
			s.log.Info("central connected", "addr", l2c.RemoteAddr().String())
			go func() {
				defer wg.Done()
				s.ServeConn(ctx, l2c)
				s.log.Info("central disconnected", "addr", l2c.RemoteAddr().String())
			}()
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-accepted:
		return fmt.Errorf("provisioning: accept: %w", err)
	}
}
