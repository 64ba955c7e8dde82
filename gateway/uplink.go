package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/internal/broker"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/uplink"
	"edgeota/protocol"
)

// openUplink starts the embedded broker when asked, opens the outbox and
// builds the MQTT uplink; each is added to closers.
func (g *Gateway) openUplink(closers *[]func() error) error {
	cfg := &g.cfg
	if cfg.GatewayID == "" {
		h, err := os.Hostname()
		if err != nil || !protocol.ValidID(h) {
			return errors.New("gateway: GatewayID is required with MQTT (the host name is not a valid id)")
		}
		cfg.GatewayID = h
	}
	if !protocol.ValidID(cfg.GatewayID) {
		return fmt.Errorf("gateway: gateway id %q does not match [A-Za-z0-9._-]{1,64}", cfg.GatewayID)
	}
	url, embedded, addr := parseMQTT(cfg.MQTT)
	if embedded {
		b, err := broker.Start(addr, g.log)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		*closers = append(*closers, func() error { b.Close(); return nil })
		g.broker = b
		url = b.URL()
		g.log.Info("embedded MQTT broker listening", "url", url)
	}
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(cfg.DataDir, "outbox.db"), MaxItems: cfg.OutboxMaxItems,
		MaxBytes: cfg.OutboxMaxBytes, Logger: g.log, OnDrop: func(n int) {
			g.metrics.OutboxDropped.Add(float64(n))
			g.log.Warn("outbox full: oldest health reports dropped", "count", n)
		}})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	*closers = append(*closers, ob.Close)
	g.outbox = ob
	up, err := uplink.New(uplink.Config{Broker: url, GatewayID: cfg.GatewayID, Prefix: cfg.MQTTPrefix, TLS: cfg.MQTTTLS,
		Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, BatchMax: cfg.BatchMax, BatchInterval: cfg.BatchInterval,
		OnDeployment: func(topic string, payload []byte) { g.deploy.OnMessage(topic, payload) }, Logger: g.log,
		Registerer: g.metrics.Registry}, ob)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.uplink = up
	g.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_outbox_depth", Help: "Items waiting in the uplink outbox."},
			func() float64 { st := ob.Stats(); return float64(st.Health.Depth + st.Status.Depth) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_outbox_oldest_seconds", Help: "Age of the oldest item in the outbox."},
			func() float64 { st := ob.Stats(); return max(st.Health.OldestAge, st.Status.OldestAge).Seconds() }))
	return nil
}

// parseMQTT splits Config.MQTT into a broker URL, or the embedded broker
// and its address.
func parseMQTT(s string) (url string, embedded bool, addr string) {
	if s == "embedded" {
		return "", true, ""
	}
	if rest, ok := strings.CutPrefix(s, "embedded:"); ok {
		return "", true, rest
	}
	return s, false, ""
}
