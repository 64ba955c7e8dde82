// Package hci opens a Linux Bluetooth adapter (HCI device hci<id>) through
// go-ble for both ends of BLE provisioning: [OpenCentral] for 'edgeota
// provision' (the operator's side, gateway/provisioner), [OpenPeripheral]
// for 'edgeota node --ble' (the node's side, nodeagent/provisioning). The
// libraries declare the adapter they need and never import this package;
// the commands open an adapter here and hand it to them.
//
// Opening an adapter needs root or CAP_NET_ADMIN and CAP_NET_RAW, and
// bluetoothd must not hold it. Every error of opening one wraps
// [ErrNoAdapter], [ErrPermission] or [ErrBusy] when it is one of those,
// and says what to do.
package hci

import (
	"errors"
	"fmt"
	"syscall"
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

// classify turns an error of opening or using hci<id> into one that wraps
// [ErrNoAdapter], [ErrPermission] or [ErrBusy] with what to do, or names
// the adapter.
func classify(id int, err error) error {
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
