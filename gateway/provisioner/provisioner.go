// Package provisioner is the central side of BLE provisioning: it finds
// nodes advertising the provisioning service, connects, reads what they
// are, sends a signed bundle in chunks, commits it and waits for the node
// to say so (docs/provisioning.md).
//
// It works on any [Adapter] (the Scan and Dial of a go-ble device): a
// Linux HCI adapter that cmd/edgeota opens, or the in-memory
// edgeota/firmware-sim/blelink.Air in tests. [Provision] and [Session] take
// a connected [ble.Client].
//
// The gateway side provisions; the node applies the bundle it receives
// (edgeota/nodeagent/provisioning), which this package never imports: the
// two sides share only the contract, edgeota/protocol/provision.
package provisioner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-ble/ble"

	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
)

// Adapter is what the provisioner needs of a BLE central: go-ble's
// Device Scan and Dial. cmd/edgeota's Linux HCI central and blelink.Air
// implement it.
type Adapter interface {
	Scan(ctx context.Context, allowDup bool, h ble.AdvHandler) error
	Dial(ctx context.Context, addr ble.Addr) (ble.Client, error)
}

var serviceUUID = ble.MustParse(provision.ServiceUUID)

// Found is a node advertising the provisioning service.
type Found struct {
	// Addr is its Bluetooth address.
	Addr string `json:"addr"`
	// Name is its advertised name: its node id, cut to 20 bytes.
	Name string `json:"name"`
	// RSSI is the strongest signal seen, in dBm.
	RSSI int `json:"rssi"`
}

// Scan listens for nodes advertising the provisioning service until ctx
// ends, calling onFound (when not nil) the first time each is seen, and
// returns them strongest first. The end of ctx is the normal end of a scan.
func Scan(ctx context.Context, a Adapter, onFound func(Found)) ([]Found, error) {
	var mu sync.Mutex
	seen := map[string]*Found{}
	h := func(ad ble.Advertisement) {
		if !advertisesService(ad) {
			return
		}
		addr := strings.ToLower(ad.Addr().String())
		mu.Lock()
		f, ok := seen[addr]
		if !ok {
			f = &Found{Addr: addr, Name: ad.LocalName(), RSSI: ad.RSSI()}
			seen[addr] = f
		} else if ad.RSSI() > f.RSSI {
			f.RSSI = ad.RSSI()
		}
		if ad.LocalName() != "" {
			f.Name = ad.LocalName()
		}
		mu.Unlock()
		// Called from the adapter's event loop: never block it.
		if !ok && onFound != nil {
			onFound(*f)
		}
	}
	err := a.Scan(ctx, true, h)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("provisioner: scan: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]Found, 0, len(seen))
	for _, f := range seen {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RSSI != out[j].RSSI {
			return out[i].RSSI > out[j].RSSI
		}
		return out[i].Addr < out[j].Addr
	})
	return out, nil
}

// advertisesService reports whether ad lists the provisioning service
// (ble.Contains is true for a nil list).
func advertisesService(ad ble.Advertisement) bool {
	for _, u := range ad.Services() {
		if u.Equal(serviceUUID) {
			return true
		}
	}
	return false
}

// ErrNotFound means no node advertised at the address before ctx ended.
var ErrNotFound = errors.New("node not found")

// Connect scans until the node at addr advertises, stops the scan, and
// dials it. It does not use go-ble's Connect, which hangs on a cancelled
// context and wedges the adapter when two advertisements match (go-ble
// issue 86 and its scan handler).
func Connect(ctx context.Context, a Adapter, addr string) (ble.Client, error) {
	found := make(chan ble.Advertisement, 1)
	scanCtx, stop := context.WithCancel(ctx)
	defer stop()
	scanned := make(chan error, 1)
	go func() {
		scanned <- a.Scan(scanCtx, true, func(ad ble.Advertisement) {
			if strings.EqualFold(ad.Addr().String(), addr) {
				select {
				case found <- ad:
				default:
				}
				stop()
			}
		})
	}()
	var ad ble.Advertisement
	select {
	case ad = <-found:
		stop()
		<-scanned
	case err := <-scanned:
		select {
		case ad = <-found:
		default:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("provisioner: %w: %s did not advertise the provisioning service (%v)", ErrNotFound, addr, ctx.Err())
			}
			return nil, fmt.Errorf("provisioner: scan: %w", err)
		}
	}
	cli, err := a.Dial(ctx, ad.Addr())
	if err != nil {
		return nil, fmt.Errorf("provisioner: dial %s: %w", addr, err)
	}
	return cli, nil
}

// NodeInfo is what a node's provisioning service says about it.
type NodeInfo struct {
	Addr           string `json:"addr"`
	NodeID         string `json:"node_id"`
	Class          string `json:"class"`
	Component      string `json:"component"`
	RunningVersion string `json:"running_version"`
	AgentVersion   string `json:"agent_version"`
	// Serial is the serial of the node's committed bundle, 0 when never
	// provisioned.
	Serial uint64 `json:"serial"`
}

// ErrRejected is wrapped by every [RejectedError].
var ErrRejected = errors.New("bundle rejected")

// RejectedError is a node's refusal of a bundle, with its status.
type RejectedError struct {
	Status provision.Status
}

// Error returns, for example, "node rejected the bundle: replay: serial 5 <= 5".
func (e *RejectedError) Error() string {
	return fmt.Sprintf("node rejected the bundle: %s", e.Status.Reason.String()+": "+e.Status.Text)
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Options tune a [Session].
type Options struct {
	// MTU is the ATT MTU to ask for (default ble.MaxMTU, 515, the most
	// go-ble accepts; asking as much as the node offers also avoids
	// go-ble's long reads, which stop early when the server's MTU is larger
	// than the one asked for). 23 skips the
	// exchange.
	MTU int
	// StatusTimeout bounds each wait for a status notification (default
	// 30s).
	StatusTimeout time.Duration
	// Now is the clock of Result.Committed (default time.Now).
	Now func() time.Time
}

// Session is an open provisioning conversation with one node.
type Session struct {
	cli   ble.Client
	opts  Options
	chars map[string]*ble.Characteristic
	notes chan provision.Status
	stop  func() bool
}

// Open discovers the provisioning service on a connected node and
// subscribes to its status. ctx bounds the whole session: when it ends
// the link is closed, which fails a request in progress.
func Open(ctx context.Context, cli ble.Client, opts Options) (*Session, error) {
	if opts.MTU == 0 {
		opts.MTU = ble.MaxMTU
	}
	if opts.StatusTimeout <= 0 {
		opts.StatusTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Session{cli: cli, opts: opts, chars: map[string]*ble.Characteristic{}, notes: make(chan provision.Status, 64)}
	s.stop = context.AfterFunc(ctx, func() { cli.Conn().Close() })
	if opts.MTU > ble.DefaultMTU {
		if _, err := cli.ExchangeMTU(opts.MTU); err != nil {
			s.stop()
			return nil, fmt.Errorf("provisioner: MTU exchange: %w", err)
		}
	}
	svcs, err := cli.DiscoverServices([]ble.UUID{serviceUUID})
	if err != nil || len(svcs) == 0 {
		s.stop()
		return nil, fmt.Errorf("provisioner: the node has no provisioning service (%v)", err)
	}
	cs, err := cli.DiscoverCharacteristics(nil, svcs[0])
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("provisioner: discover characteristics: %w", err)
	}
	for _, c := range cs {
		if _, err := cli.DiscoverDescriptors(nil, c); err != nil {
			s.stop()
			return nil, fmt.Errorf("provisioner: discover descriptors: %w", err)
		}
		s.chars[c.UUID.String()] = c
	}
	for _, u := range []string{provision.NodeIDUUID, provision.ClassUUID, provision.ComponentUUID, provision.RunningVersionUUID,
		provision.AgentVersionUUID, provision.SerialUUID, provision.BundleUUID, provision.ControlUUID, provision.StatusUUID} {
		if s.char(u) == nil {
			s.stop()
			return nil, fmt.Errorf("provisioner: the node's service lacks characteristic %s", u)
		}
	}
	// The handler runs with the GATT client locked: copy and return, never
	// call the client from it: go-ble drops notifications past 16 queued,
	// and a client call from the handler deadlocks.
	err = cli.Subscribe(s.char(provision.StatusUUID), false, func(v []byte) {
		st, err := provision.ParseStatus(v)
		if err != nil {
			return
		}
		select {
		case s.notes <- st:
		default:
		}
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("provisioner: subscribe to status: %w", err)
	}
	return s, nil
}

func (s *Session) char(u string) *ble.Characteristic {
	return s.chars[ble.MustParse(u).String()]
}

// Info reads what the node says about itself.
func (s *Session) Info() (NodeInfo, error) {
	var info NodeInfo
	info.Addr = strings.ToLower(s.cli.Addr().String())
	for _, f := range []struct {
		uuid string
		dst  *string
	}{
		{provision.NodeIDUUID, &info.NodeID}, {provision.ComponentUUID, &info.Component},
		{provision.RunningVersionUUID, &info.RunningVersion}, {provision.AgentVersionUUID, &info.AgentVersion},
	} {
		v, err := s.cli.ReadLongCharacteristic(s.char(f.uuid))
		if err != nil {
			return info, fmt.Errorf("provisioner: read %s: %w", f.uuid, err)
		}
		*f.dst = string(v)
	}
	v, err := s.cli.ReadLongCharacteristic(s.char(provision.ClassUUID))
	if err != nil || len(v) != 16 {
		return info, fmt.Errorf("provisioner: read class: %d bytes, %v", len(v), err)
	}
	info.Class = protocol.Class(v).String()
	v, err = s.cli.ReadCharacteristic(s.char(provision.SerialUUID))
	if err != nil || len(v) != 8 {
		return info, fmt.Errorf("provisioner: read serial: %d bytes, %v", len(v), err)
	}
	info.Serial = binary.BigEndian.Uint64(v)
	return info, nil
}

// wait returns the next status whose state is one of want or rejected.
func (s *Session) wait(ctx context.Context, want provision.State) (provision.Status, error) {
	t := time.NewTimer(s.opts.StatusTimeout)
	defer t.Stop()
	for {
		select {
		case st := <-s.notes:
			switch st.State {
			case want:
				return st, nil
			case provision.StateRejected:
				return st, &RejectedError{Status: st}
			}
		case <-t.C:
			return provision.Status{}, fmt.Errorf("provisioner: no %s status from the node within %s", want, s.opts.StatusTimeout)
		case <-ctx.Done():
			return provision.Status{}, ctx.Err()
		case <-s.cli.Disconnected():
			return provision.Status{}, errors.New("provisioner: the node disconnected")
		}
	}
}

// Send writes a signed bundle in chunks sized to the link and waits for the
// node to accept it (a [*RejectedError] when it refuses).
func (s *Session) Send(ctx context.Context, signed []byte) error {
	chunks, err := provision.Split(signed, s.cli.Conn().TxMTU()-3)
	if err != nil {
		return fmt.Errorf("provisioner: %w", err)
	}
	c := s.char(provision.BundleUUID)
	for i, v := range chunks {
		if err := s.cli.WriteCharacteristic(c, v, false); err != nil {
			var ae ble.ATTError
			if errors.As(err, &ae) && byte(ae) == provision.ATTRejected {
				_, werr := s.wait(ctx, provision.StateAccepted)
				if werr != nil {
					return werr
				}
			}
			return fmt.Errorf("provisioner: chunk %d of %d: %w", i+1, len(chunks), err)
		}
	}
	_, err = s.wait(ctx, provision.StateAccepted)
	return err
}

// Commit asks the node to apply the accepted bundle and waits until it
// says the configuration is saved.
func (s *Session) Commit(ctx context.Context) error {
	if err := s.cli.WriteCharacteristic(s.char(provision.ControlUUID), []byte{provision.ControlCommit}, false); err != nil {
		var ae ble.ATTError
		if errors.As(err, &ae) && (byte(ae) == provision.ATTRejected || byte(ae) == provision.ATTStoreFailed) {
			if _, werr := s.wait(ctx, provision.StateCommitted); werr != nil {
				return werr
			}
		}
		return fmt.Errorf("provisioner: commit: %w", err)
	}
	_, err := s.wait(ctx, provision.StateCommitted)
	return err
}

// Abort discards what the node holds of this session's transfer.
func (s *Session) Abort() error {
	return s.cli.WriteCharacteristic(s.char(provision.ControlUUID), []byte{provision.ControlAbort}, false)
}

// Close unsubscribes and disconnects.
func (s *Session) Close() error {
	s.stop()
	s.cli.Unsubscribe(s.char(provision.StatusUUID), false)
	return s.cli.CancelConnection()
}

// parseBundle reads a signed bundle's signer and content, without
// verifying it: the node does.
func parseBundle(signed []byte) (sign.KeyID, *provision.Bundle, error) {
	env, err := sign.Parse(signed)
	if err != nil {
		return sign.KeyID{}, nil, fmt.Errorf("provisioner: bundle: %w", err)
	}
	b, err := provision.Decode(env.Payload)
	if err != nil {
		return sign.KeyID{}, nil, fmt.Errorf("provisioner: bundle: %w", err)
	}
	return env.KeyID, b, nil
}

// Result is what [Provision] did: an audit record of one provisioning.
type Result struct {
	// Node is what the node said about itself before the bundle.
	Node NodeInfo `json:"node"`
	// NodeID, Serial and Labels are the bundle's.
	NodeID string            `json:"node_id"`
	Serial uint64            `json:"serial"`
	Labels map[string]string `json:"labels"`
	// Signer is the key id (hex) of the operator key that signed it.
	Signer string `json:"signer"`
	// Bytes is the size of the signed bundle; Chunks how many writes it took.
	Bytes  int `json:"bytes"`
	Chunks int `json:"chunks"`
	// Committed is when the node confirmed the commit.
	Committed time.Time `json:"committed"`
}

// Provision provisions a connected node with a signed bundle: discover, read
// its info, check the bundle names it and is newer than what it holds,
// send, commit; it disconnects in every case.
func Provision(ctx context.Context, cli ble.Client, signed []byte, opts Options) (*Result, error) {
	if _, _, err := parseBundle(signed); err != nil {
		cli.CancelConnection()
		return nil, err
	}
	return ProvisionFor(ctx, cli, func(NodeInfo) ([]byte, error) { return signed, nil }, opts)
}

// ProvisionFor provisions a connected node as [Provision] does, with the signed
// bundle build returns for what the node says about itself (its id,
// component and current serial): a bundle signed on the spot. An error
// from build ends it, unchanged, before anything is sent.
func ProvisionFor(ctx context.Context, cli ble.Client, build func(NodeInfo) ([]byte, error), opts Options) (*Result, error) {
	s, err := Open(ctx, cli, opts)
	if err != nil {
		cli.CancelConnection()
		return nil, err
	}
	defer s.Close()
	info, err := s.Info()
	if err != nil {
		return nil, err
	}
	signed, err := build(info)
	if err != nil {
		return nil, err
	}
	kid, b, err := parseBundle(signed)
	if err != nil {
		return nil, err
	}
	if info.NodeID != b.NodeID {
		return nil, fmt.Errorf("provisioner: the bundle is for node %q, but %s is node %q", b.NodeID, info.Addr, info.NodeID)
	}
	if info.Serial >= b.Serial {
		return nil, fmt.Errorf("provisioner: node %s holds serial %d; the bundle's serial %d must be higher", info.NodeID, info.Serial, b.Serial)
	}
	if err := s.Send(ctx, signed); err != nil {
		return nil, err
	}
	if err := s.Commit(ctx); err != nil {
		return nil, err
	}
	chunks, _ := provision.Split(signed, cli.Conn().TxMTU()-3)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Result{Node: info, NodeID: b.NodeID, Serial: b.Serial, Labels: b.Labels, Signer: kid.String(),
		Bytes: len(signed), Chunks: len(chunks), Committed: opts.Now().UTC()}, nil
}
