package hci

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error  // the sentinel wrapped, nil for none
		says string // what to do
	}{
		{"permission", syscall.EPERM, ErrPermission, "setcap cap_net_raw,cap_net_admin+eip"},
		{"access", fmt.Errorf("can't create socket: %w", syscall.EACCES), ErrPermission, "run as root"},
		{"no Bluetooth sockets", syscall.EAFNOSUPPORT, ErrNoAdapter, "no Bluetooth sockets"},
		{"no device", syscall.ENODEV, ErrNoAdapter, "hciconfig -a"},
		{"no such device or address", syscall.ENXIO, ErrNoAdapter, "no hci3"},
		{"busy", syscall.EBUSY, ErrBusy, "systemctl stop bluetooth"},
		{"already", syscall.EALREADY, ErrBusy, "stop bluetoothd"},
		{"other", errors.New("strange"), nil, "hci3: strange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(3, tt.err)
			for _, s := range []error{ErrNoAdapter, ErrPermission, ErrBusy} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.want))
				}
			}
			if !errors.Is(err, tt.err) && tt.want == nil {
				t.Errorf("%v does not wrap %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("%q does not say %q", err, tt.says)
			}
		})
	}
	if err := classify(0, nil); err != nil {
		t.Errorf("classify(nil) = %v", err)
	}
}

// TestOpen opens hci0 both ways: here (CI containers have no Bluetooth,
// or no capability) it fails, and the error is one of the three.
func TestOpen(t *testing.T) {
	for name, open := range map[string]func(int) (interface{ Close() error }, error){
		"central":    func(id int) (interface{ Close() error }, error) { return OpenCentral(id) },
		"peripheral": func(id int) (interface{ Close() error }, error) { return OpenPeripheral(id) },
	} {
		t.Run(name, func(t *testing.T) {
			a, err := open(0)
			if err == nil {
				a.Close()
				t.Skip("a real adapter is present")
			}
			t.Logf("open hci0: %v", err)
			if !errors.Is(err, ErrNoAdapter) && !errors.Is(err, ErrPermission) && !errors.Is(err, ErrBusy) {
				t.Fatalf("unclassified error: %v", err)
			}
		})
	}
}
