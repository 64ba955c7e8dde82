package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"edgeota/gateway"
)

// mqttFlags are the gateway's uplink flags: the connection's (shared with
// watch), and the uplink's own.
type mqttFlags struct {
	conn                              mqttConnFlags
	gatewayID, idAlias, batchInterval string
	batchMax, outboxItems             int
	outboxBytes                       int64
	deployTrust                       []string
}

func (m *mqttFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	m.conn.register(fl, "MQTT broker for the uplink: "+mqttURLForms+"; embedded or embedded:ADDR for a broker in the gateway (none: no uplink)")
	fl.StringVar(&m.gatewayID, "gateway-id", "", "this gateway's id in MQTT topics and deployments (default: the host name)")
	fl.StringVar(&m.idAlias, "id", "", "same as --gateway-id")
	fl.IntVar(&m.batchMax, "batch-max", 512, "most reports or events per MQTT publish (at most 1024)")
	fl.StringVar(&m.batchInterval, "batch-interval", "100ms", "longest a report waits for its batch to fill")
	fl.IntVar(&m.outboxItems, "outbox-max-items", 1_000_000, "bound on the outbox; beyond it the oldest health reports are dropped")
	fl.Int64Var(&m.outboxBytes, "outbox-max-bytes", 256<<20, "bound on the outbox's bytes")
	fl.StringArrayVar(&m.deployTrust, "deploy-trust", nil, "trusted deployment key (PKIX PEM); repeat for several")
}

// apply checks the flags and sets the uplink's part of gc.
func (m *mqttFlags) apply(gc *gateway.Config) error {
	id := m.gatewayID
	if id == "" {
		id = m.idAlias
	}
	gc.GatewayID = id
	gc.BatchMax, gc.OutboxMaxItems, gc.OutboxMaxBytes = m.batchMax, m.outboxItems, m.outboxBytes
	d, err := time.ParseDuration(m.batchInterval)
	if err != nil || d <= 0 {
		return usagef("--batch-interval %q: want a duration such as 100ms", m.batchInterval)
	}
	gc.BatchInterval = d
	if len(m.deployTrust) > 0 {
		if gc.DeployTrustKeys, err = readPublicKeys(m.deployTrust); err != nil {
			return err
		}
	}
	switch url := m.conn.url; {
	case url == "", url == "embedded", strings.HasPrefix(url, "embedded:"):
		// No uplink, or the gateway's own broker: plain, without
		// credentials.
		c := m.conn
		if c.caFile != "" || c.certFile != "" || c.keyFile != "" || c.username != "" || c.password != "" || c.passFile != "" {
			return usagef("--mqtt-ca, --mqtt-cert, --mqtt-key and the MQTT credentials need an external broker (--mqtt URL)")
		}
		if gc.MQTTPrefix, err = c.topicPrefix(); err != nil {
			return err
		}
		gc.MQTT = url
	default:
		c, err := m.conn.conn()
		if err != nil {
			return err
		}
		gc.MQTT, gc.MQTTPrefix, gc.MQTTTLS, gc.MQTTUsername, gc.MQTTPassword = c.Broker, c.Prefix, c.TLS, c.Username, c.Password
	}
	return nil
}
