package hci

import (
	"context"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux"
)

// Central is a Linux Bluetooth adapter in the central role, for 'edgeota
// provision': it implements gateway/provisioner.Adapter.
type Central struct {
	dev *linux.Device
}

// OpenCentral opens hci<id> as a central through go-ble. Close it when
// done.
func OpenCentral(id int) (*Central, error) {
	dev, err := linux.NewDeviceWithName("edgeota-gw", ble.OptDeviceID(id), ble.OptDialerTimeout(20*time.Second))
	if err != nil {
		return nil, classify(id, err)
	}
	return &Central{dev: dev}, nil
}

// Scan scans for advertisements until ctx ends.
func (c *Central) Scan(ctx context.Context, allowDup bool, fn ble.AdvHandler) error {
	return c.dev.Scan(ctx, allowDup, fn)
}

// Dial connects to the peripheral at addr, as advertised.
func (c *Central) Dial(ctx context.Context, addr ble.Addr) (ble.Client, error) {
	return c.dev.Dial(ctx, addr)
}

// Addr returns the adapter's address.
func (c *Central) Addr() string { return c.dev.Address().String() }

// Close releases the adapter.
func (c *Central) Close() error { return c.dev.Stop() }
