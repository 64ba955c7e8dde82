package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"edgeota/gateway"
)

// mqttFlags are the gateway's uplink flags.
type mqttFlags struct {
	url, gatewayID, idAlias, prefix, ca, cert, key, user, passFile, batchInterval string
	batchMax, outboxItems                                                         int
	outboxBytes                                                                   int64
	deployTrust                                                                   []string
}

func (m *mqttFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&m.url, "mqtt", "", "MQTT broker for the uplink: tcp://HOST:1883, mqtts://HOST:8883 (TLS; ssl:// is the same), embedded or embedded:ADDR (none: no uplink)")
	fl.StringVar(&m.gatewayID, "gateway-id", "", "this gateway's id in MQTT topics and deployments (default: the host name)")
	fl.StringVar(&m.idAlias, "id", "", "same as --gateway-id")
	fl.StringVar(&m.prefix, "mqtt-prefix", "edgeota/v1", "MQTT topic prefix")
	fl.StringVar(&m.ca, "mqtt-ca", "", "CA certificate (PEM) of an mqtts:// broker")
	fl.StringVar(&m.cert, "mqtt-cert", "", "client certificate (PEM) for an mqtts:// broker")
	fl.StringVar(&m.key, "mqtt-key", "", "client key (PEM) for an mqtts:// broker")
	fl.StringVar(&m.user, "mqtt-username", "", "MQTT user name")
	fl.StringVar(&m.passFile, "mqtt-password-file", "", "file holding the MQTT password")
	fl.IntVar(&m.batchMax, "batch-max", 512, "most reports or events per MQTT publish (at most 1024)")
	fl.StringVar(&m.batchInterval, "batch-interval", "100ms", "longest a report waits for its batch to fill")
	fl.IntVar(&m.outboxItems, "outbox-max-items", 1_000_000, "bound on the outbox; beyond it the oldest health reports are dropped")
	fl.Int64Var(&m.outboxBytes, "outbox-max-bytes", 256<<20, "bound on the outbox's bytes")
	fl.StringArrayVar(&m.deployTrust, "deploy-trust", nil, "trusted deployment key (PKIX PEM); repeat for several")
}

func (m *mqttFlags) apply(gc *gateway.Config) error {
	id := m.gatewayID
	if id == "" {
		id = m.idAlias
	}
	gc.MQTT, gc.GatewayID, gc.MQTTPrefix = m.url, id, m.prefix
	gc.BatchMax, gc.OutboxMaxItems, gc.OutboxMaxBytes = m.batchMax, m.outboxItems, m.outboxBytes
	d, err := time.ParseDuration(m.batchInterval)
	if err != nil || d <= 0 {
		return usagef("--batch-interval %q: want a duration such as 100ms", m.batchInterval)
	}
	gc.BatchInterval = d
	if len(m.deployTrust) > 0 {
		if gc.DeployTrust, err = readPublicKeys(m.deployTrust); err != nil {
			return err
		}
	}
	if m.user != "" {
		gc.MQTTUsername = m.user
		if m.passFile != "" {
			b, err := os.ReadFile(m.passFile)
			if err != nil {
				return err
			}
			gc.MQTTPassword = strings.TrimRight(string(b), "\r\n")
		}
	}
	if strings.HasPrefix(m.url, "mqtts://") || strings.HasPrefix(m.url, "ssl://") || strings.HasPrefix(m.url, "tls://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if m.ca != "" {
			pem, err := os.ReadFile(m.ca)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--mqtt-ca %s: no PEM certificate", m.ca)
			}
			tc.RootCAs = pool
		}
		if m.cert != "" || m.key != "" {
			c, err := tls.LoadX509KeyPair(m.cert, m.key)
			if err != nil {
				return fmt.Errorf("--mqtt-cert/--mqtt-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		gc.MQTTTLS = tc
	} else if m.ca != "" || m.cert != "" {
		return usagef("--mqtt-ca and --mqtt-cert need an mqtts:// broker")
	}
	return nil
}
