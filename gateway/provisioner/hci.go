package provisioner

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux"
)

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

// hciError turns an error of opening hci<id> into one that wraps
// ErrNoAdapter, ErrPermission or ErrBusy and says what to do.
func hciError(id int, err error) error {
	switch {
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
		return nil, hciError(id, err)
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
