package hci

import (
	"github.com/go-ble/ble"
	blehci "github.com/go-ble/ble/linux/hci"
)

// Peripheral is a Linux Bluetooth adapter in the peripheral role, for
// 'edgeota node --ble': it implements nodeagent/provisioning.Peripheral.
// It is go-ble's bare HCI, not its linux.Device, whose own ATT server
// would serve centrals without the provisioning service's guard against
// the requests that crash go-ble's server.
type Peripheral struct {
	id  int
	dev *blehci.HCI
}

// OpenPeripheral opens hci<id> as a peripheral through go-ble. Close it
// when done.
func OpenPeripheral(id int) (*Peripheral, error) {
	dev, err := blehci.NewHCI(ble.OptDeviceID(id))
	if err != nil {
		return nil, classify(id, err)
	}
	if err := dev.Init(); err != nil {
		dev.Close()
		return nil, classify(id, err)
	}
	return &Peripheral{id: id, dev: dev}, nil
}

// Advertise advertises name and the services until [Peripheral.StopAdvertising].
func (p *Peripheral) Advertise(name string, services ...ble.UUID) error {
	return classify(p.id, p.dev.AdvertiseNameAndServices(name, services...))
}

// StopAdvertising stops advertising.
func (p *Peripheral) StopAdvertising() error { return p.dev.StopAdvertising() }

// Accept waits for a central to connect and returns the link.
func (p *Peripheral) Accept() (ble.Conn, error) { return p.dev.Accept() }

// Addr returns the adapter's address.
func (p *Peripheral) Addr() string { return p.dev.Addr().String() }

// Close releases the adapter; a blocked Accept returns an error.
func (p *Peripheral) Close() error { return p.dev.Close() }
