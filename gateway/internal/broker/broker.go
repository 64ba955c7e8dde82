// Package broker runs an embedded MQTT broker (github.com/mochi-mqtt/server/v2)
// inside the gateway, so that a gateway and the demo run on a fresh machine
// with no broker installed (`edgeota gateway --mqtt embedded[:ADDR]`).
//
// It listens on 127.0.0.1 on a free port unless an address is given, so a
// mosquitto service on 1883 does not break it, and allows any client that
// can reach that address: it is for development and demos, not for a
// fleet's production broker.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a running embedded broker.
type Broker struct {
	srv  *mqtt.Server
	addr net.Addr
}

// Start listens on addr ("" means 127.0.0.1 on a free port) and serves.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", addr, err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumSessionExpiryInterval = 3600
	caps.MaximumInflight = 1024
	log = slog.New(namedHandler{log.Handler()}).With("component", "embedded-broker")
	srv := mqtt.New(&mqtt.Options{Logger: log, Capabilities: caps, InlineClient: true})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &Broker{srv: srv, addr: ln.Addr()}, nil
}

// URL is the broker's address as a client URL, tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://" + b.addr.String() }

// Close stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }

// namedHandler names the records mochi logs without a message: a client
// connection that ended with an error (its listeners log
// Warn("", "error", err)). Every line of the gateway's log says what
// happened, in a "msg" of its own under --log-format json too.
type namedHandler struct{ slog.Handler }

// connectionEnded is the message of mochi's records that have none.
const connectionEnded = "client connection ended with an error"

func (h namedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" {
		r.Message = connectionEnded
	}
	return h.Handler.Handle(ctx, r)
}

func (h namedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return namedHandler{h.Handler.WithAttrs(attrs)}
}

func (h namedHandler) WithGroup(name string) slog.Handler {
	return namedHandler{h.Handler.WithGroup(name)}
}
