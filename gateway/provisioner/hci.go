package provisioner

import (
	"context"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux"

	"edgeota/nodeagent/provisioning"
)

// Errors of opening a Bluetooth adapter: the node side's, since both ends
// open an adapter the same way.
var (
	// ErrNoAdapter: no such HCI device, or no Bluetooth in this kernel or
	// container.
	ErrNoAdapter = provisioning.ErrNoAdapter
	// ErrPermission: opening a raw HCI socket needs root or
	// CAP_NET_ADMIN and CAP_NET_RAW.
	ErrPermission = provisioning.ErrPermission
	// ErrBusy: another program (usually bluetoothd) holds the adapter.
	ErrBusy = provisioning.ErrBusy
)

// HCI is a Linux Bluetooth adapter used as a central. It implements
// [Adapter].
type HCI struct {
	dev *linux.Device
}

// OpenHCI opens Linux HCI device hci<id> through go-ble. It needs root or
// CAP_NET_ADMIN and CAP_NET_RAW, and bluetoothd must not hold the
// adapter; the error wraps [ErrNoAdapter], [ErrPermission] or [ErrBusy]
// and says what to do. Close it when done.
func OpenHCI(id int) (*HCI, error) {
	dev, err := linux.NewDeviceWithName("edgeota-gw", ble.OptDeviceID(id), ble.OptDialerTimeout(20*time.Second))
	if err != nil {
		return nil, provisioning.HCIError(id, err)
	}
	return &HCI{dev: dev}, nil
}

// Scan scans for advertisements until ctx ends.
func (h *HCI) Scan(ctx context.Context, allowDup bool, fn ble.AdvHandler) error {
	return h.dev.Scan(ctx, allowDup, fn)
}

// Dial connects to the peripheral at addr, as advertised.
func (h *HCI) Dial(ctx context.Context, addr ble.Addr) (ble.Client, error) {
	return h.dev.Dial(ctx, addr)
}

// Addr returns the adapter's address.
func (h *HCI) Addr() string { return h.dev.Address().String() }

// Close releases the adapter.
func (h *HCI) Close() error { return h.dev.Stop() }
