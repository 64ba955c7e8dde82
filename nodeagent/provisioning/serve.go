package provisioning

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/att"
	"github.com/go-ble/ble/linux/gatt"
	"github.com/go-ble/ble/linux/hci"

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
// write dereferences nil (LIBRARY-NOTES 7.2.4), and a CCCD write shorter
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
// MTU-1 crash its server, LIBRARY-NOTES 7.2.1).
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

// Errors of opening a Bluetooth adapter.
var (
	// ErrNoAdapter: no such HCI device, or no Bluetooth in this kernel or
	// container.
	ErrNoAdapter = errors.New("no Bluetooth adapter")
	// ErrPermission: opening a raw HCI socket needs root or
	// CAP_NET_ADMIN and CAP_NET_RAW.
	ErrPermission = errors.New("no permission to use the Bluetooth adapter")
	// ErrBusy: another program (usually bluetoothd) holds the adapter.
	ErrBusy = errors.New("the Bluetooth adapter is busy")
)

// HCIError turns an error of opening HCI device hci<id> into one that
// wraps [ErrNoAdapter], [ErrPermission] or [ErrBusy] with what to do.
func HCIError(id int, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w hci%d (%v): run as root, or grant the binary CAP_NET_ADMIN and CAP_NET_RAW: sudo setcap cap_net_raw,cap_net_admin+eip bin/edgeota", ErrPermission, id, err)
	case errors.Is(err, syscall.EAFNOSUPPORT):
		return fmt.Errorf("%w: this kernel or container has no Bluetooth sockets (%v)", ErrNoAdapter, err)
	case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: no hci%d (%v); list adapters with 'hciconfig -a' or 'btmgmt info'", ErrNoAdapter, id, err)
	case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.EALREADY):
		return fmt.Errorf("%w: hci%d (%v): stop bluetoothd (sudo systemctl stop bluetooth) so that edgeota can own the adapter", ErrBusy, id, err)
	}
	return fmt.Errorf("hci%d: %w", id, err)
}

// ServeHCI serves the provisioning service on a real adapter, Linux HCI
// device hci<id>, through go-ble: it advertises the node id and the service
// UUID, and serves each central that connects with [Service.ServeConn]
// (with its guard against go-ble's crashing requests), until ctx ends.
// Opening the adapter needs root or CAP_NET_ADMIN and CAP_NET_RAW, and
// bluetoothd must not hold it; errors say which ([HCIError]).
func (s *Service) ServeHCI(ctx context.Context, id int) error {
	dev, err := hci.NewHCI(ble.OptDeviceID(id))
	if err != nil {
		return HCIError(id, err)
	}
	if err := dev.Init(); err != nil {
		dev.Close()
		return HCIError(id, err)
	}
	if err := dev.AdvertiseNameAndServices(s.advName(), ble.MustParse(provision.ServiceUUID)); err != nil {
		dev.Close()
		return HCIError(id, err)
	}
	s.log.Info("advertising the provisioning service", "hci", id, "name", s.advName(), "addr", dev.Addr().String())
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
		// never comes, then close the adapter.
		cancel()
		served := make(chan struct{})
		go func() { wg.Wait(); close(served) }()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			s.log.Warn("a central did not disconnect; closing the adapter anyway", "hci", id)
		}
		dev.StopAdvertising()
		dev.Close()
	}()
	accepted := make(chan error, 1)
	go func() {
		for {
			l2c, err := dev.Accept()
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
		return fmt.Errorf("provisioning: hci%d: %w", id, err)
	}
}
