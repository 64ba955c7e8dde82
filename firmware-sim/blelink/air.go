package blelink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/gatt"
)

// CentralAddr is the address of the central end of links that [Air.Dial]
// makes.
const CentralAddr = "0a:00:00:00:00:00"

// ErrNotFound is returned by Dial for an address nothing advertises.
var ErrNotFound = errors.New("blelink: no peripheral advertises at this address")

// Peripheral is what a peripheral advertises on an [Air].
type Peripheral struct {
	// Addr is its address, e.g. "0a:00:00:00:00:01"; unique on the Air.
	Addr string
	// Name is its advertised local name.
	Name string
	// Services are the service UUIDs it advertises.
	Services []ble.UUID
	// RSSI is the signal strength a central sees, in dBm (default -50).
	RSSI int
	// Accept serves one connection: it is called in its own goroutine with
	// the peripheral end of each new link and should return when the link
	// is closed.
	Accept func(conn ble.Conn)
}

// Air holds the advertising peripherals a central can scan and dial. It is
// safe for concurrent use.
type Air struct {
	mu     sync.Mutex
	periph map[string]*Peripheral
	wg     sync.WaitGroup
}

// NewAir returns an empty Air.
func NewAir() *Air { return &Air{periph: map[string]*Peripheral{}} }

// Advertise puts p on the air until the returned function is called.
func (a *Air) Advertise(p Peripheral) (stop func(), err error) {
	if p.Accept == nil {
		return nil, errors.New("blelink: peripheral without Accept")
	}
	key := strings.ToLower(p.Addr)
	if p.RSSI == 0 {
		p.RSSI = -50
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.periph[key]; dup {
		return nil, fmt.Errorf("blelink: address %s already advertises", p.Addr)
	}
	a.periph[key] = &p
	return func() {
		a.mu.Lock()
		if a.periph[key] == &p {
			delete(a.periph, key)
		}
		a.mu.Unlock()
	}, nil
}

// Scan calls h once for each peripheral on the air (twice when allowDup is
// set, as a repeated advertisement would), then blocks until ctx ends and
// returns its error, as go-ble's Device.Scan does.
func (a *Air) Scan(ctx context.Context, allowDup bool, h ble.AdvHandler) error {
	a.mu.Lock()
	var advs []ble.Advertisement
	for _, p := range a.periph {
		advs = append(advs, adv{p: *p, addr: ble.NewAddr(p.Addr)})
	}
	a.mu.Unlock()
	rounds := 1
	if allowDup {
		rounds = 2
	}
	for range rounds {
		for _, ad := range advs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h(ad)
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// Dial connects to the peripheral advertising at addr: a new [Pipe], its
// peripheral end handed to the peripheral's Accept, its central end
// wrapped in go-ble's GATT client.
func (a *Air) Dial(ctx context.Context, addr ble.Addr) (ble.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	p, ok := a.periph[strings.ToLower(addr.String())]
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, addr)
	}
	central, periph := Pipe(CentralAddr, p.Addr)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		p.Accept(periph)
	}()
	return gatt.NewClient(central)
}

// Wait waits for every Accept call Dial started to return.
func (a *Air) Wait() { a.wg.Wait() }

// adv is one advertisement of a peripheral.
type adv struct {
	p    Peripheral
	addr ble.Addr
}

func (d adv) LocalName() string              { return d.p.Name }
func (d adv) ManufacturerData() []byte       { return nil }
func (d adv) ServiceData() []ble.ServiceData { return nil }
func (d adv) Services() []ble.UUID           { return d.p.Services }
func (d adv) OverflowService() []ble.UUID    { return nil }
func (d adv) TxPowerLevel() int              { return 0 }
func (d adv) Connectable() bool              { return true }
func (d adv) SolicitedService() []ble.UUID   { return nil }
func (d adv) RSSI() int                      { return d.p.RSSI }
func (d adv) Addr() ble.Addr                 { return d.addr }
