package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"edgeota/gateway"
)

// gatewayFile is the YAML configuration file of edgeota gateway; its keys
// are the flag names.
type gatewayFile struct {
	Data                string   `yaml:"data"`
	CoAP                string   `yaml:"coap"`
	Admin               string   `yaml:"admin"`
	Trust               []string `yaml:"trust"`
	CacheMaxBytes       int64    `yaml:"cache-max-bytes"`
	MaxTransfers        int      `yaml:"max-transfers"`
	MaxTransfersPerNode int      `yaml:"max-transfers-per-node"`
	BlockCacheBytes     int64    `yaml:"block-cache-bytes"`
	MQTT                string   `yaml:"mqtt"`
	GatewayID           string   `yaml:"gateway-id"`
	MQTTPrefix          string   `yaml:"mqtt-prefix"`
	MQTTCA              string   `yaml:"mqtt-ca"`
	MQTTCert            string   `yaml:"mqtt-cert"`
	MQTTKey             string   `yaml:"mqtt-key"`
	MQTTUsername        string   `yaml:"mqtt-username"`
	MQTTPasswordFile    string   `yaml:"mqtt-password-file"`
	BatchMax            int      `yaml:"batch-max"`
	BatchInterval       string   `yaml:"batch-interval"`
	OutboxMaxItems      int      `yaml:"outbox-max-items"`
	OutboxMaxBytes      int64    `yaml:"outbox-max-bytes"`
	DeployTrust         []string `yaml:"deploy-trust"`
	LogLevel            string   `yaml:"log-level"`
	LogFormat           string   `yaml:"log-format"`
}

// applyConfigFile sets every flag the command line did not set from the
// YAML file; unknown keys are errors.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f gatewayFile
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(b, &node); err != nil || len(node.Content) == 0 {
		return fmt.Errorf("%s: not a YAML mapping", path)
	}
	m := node.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		name, val := m.Content[i].Value, m.Content[i+1]
		fl := cmd.Flags().Lookup(name)
		if fl == nil {
			fl = cmd.InheritedFlags().Lookup(name)
		}
		if fl == nil || fl.Changed {
			continue
		}
		vals := []string{val.Value}
		if val.Kind == yaml.SequenceNode {
			vals = vals[:0]
			for _, c := range val.Content {
				vals = append(vals, c.Value)
			}
		}
		for _, v := range vals {
			if err := fl.Value.Set(v); err != nil {
				return fmt.Errorf("%s: %s: %w", path, name, err)
			}
		}
	}
	return nil
}

func newGatewayCmd() *cobra.Command {
	var cfgFile, data, coapAddr, admin string
	var trust []string
	var cacheMax int64
	var maxTransfers, maxPerNode int
	var blockCache int64
	var mq mqttFlags
	var timeScale float64
	var sim bool
	cmd := &cobra.Command{
		Use:   "gateway --data DIR --trust KEY.pub [--coap ADDR] [--admin ADDR]",
		Short: "Run the edge gateway: signed-model cache, CoAP service to nodes, admin API",
		Long: `Run the edge gateway.

It caches signed models in a bbolt database under --data, accepting a model
only when its manifest verifies against a --trust key and the image's digest
and size match. It serves nodes over CoAP on UDP (--coap, default :5683):
images block-wise (RFC 7959) at the block size a node asks, each node's
assigned manifest with Observe (RFC 7641), and node Hello, health reports
and status events. Plain UDP is for development: the log says so.

With --mqtt the gateway relays every health report and status event
upstream (PROTOCOL.md section 6) in CBOR batches, through a durable bbolt
outbox: a report is on disk before its node gets 2.04 and leaves only when
the broker acknowledged it, so a broker outage or a kill -9 loses nothing.
--mqtt embedded runs a broker inside the gateway on 127.0.0.1 (a free port,
logged), for machines without one. Signed deployments arrive on the
retained deployment topics and are verified with --deploy-trust.

The admin API (--admin, default 127.0.0.1:8080, JSON over HTTP) takes models
(edgeota model push), assignments, lists nodes (edgeota nodes) and models,
serves Prometheus metrics at /metrics and a consistent database backup at
/v1/backup while running.

Every flag can also come from a YAML file (--config); its keys are the flag
names, and flags given on the command line win.`,
		Example: `  edgeota gateway --data /var/lib/edgeota --trust operator.pub --coap :5683 --admin 127.0.0.1:8080

  # gateway.yaml
  data: /var/lib/edgeota
  trust: [operator.pub]
  coap: ":5683"
  cache-max-bytes: 1073741824`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile != "" {
				if err := applyConfigFile(cmd, cfgFile); err != nil {
					return usagef("--config: %v", err)
				}
			}
			if data == "" {
				return usagef("--data DIR is required")
			}
			if len(trust) == 0 {
				return usagef("at least one --trust KEY.pub is required: the gateway caches only models its operator signed")
			}
			keys, err := readPublicKeys(trust)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			log := loggerFrom(cmd)
			gc := gateway.Config{DataDir: data, CoAPAddr: coapAddr, AdminAddr: admin, Trust: keys,
				CacheMaxBytes: cacheMax, MaxTransfers: maxTransfers, MaxTransfersPerNode: maxPerNode, BlockCacheBytes: blockCache, Logger: log}
			if err := mq.apply(&gc); err != nil {
				return err
			}
			if timeScale != 1 {
				if !sim {
					return usagef("--time-scale %g needs --sim: compressed time is for simulations, never production", timeScale)
				}
				gc.TimeScale, gc.Sim, gc.Clock = timeScale, true, gateway.ScaledClock(timeScale)
				log.Warn("SIMULATION: the gateway's clock runs faster than real time", "time_scale", timeScale)
			}
			g, err := gateway.New(gc)
			if err != nil {
				return err
			}
			log.Warn("CoAP over plain UDP: development only, no DTLS; nodes still verify every manifest end to end")
			err = g.Run(cmd.Context())
			if errors.Is(err, cmd.Context().Err()) {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgFile, "config", "", "YAML file with any of these flags (keys are the flag names)")
	fl.StringVar(&data, "data", "", "directory of the gateway's database")
	fl.StringVar(&coapAddr, "coap", ":5683", "UDP address of the CoAP service")
	fl.StringVar(&admin, "admin", "127.0.0.1:8080", "TCP address of the admin API (- to disable)")
	fl.StringArrayVar(&trust, "trust", nil, "trusted manifest key (PKIX PEM); repeat for several")
	fl.Int64Var(&cacheMax, "cache-max-bytes", 0, "bound on cached images; least recently used unassigned images are evicted (0: none)")
	fl.IntVar(&maxTransfers, "max-transfers", 512, "concurrent image transfers in total")
	fl.IntVar(&maxPerNode, "max-transfers-per-node", 2, "concurrent image transfers per node")
	fl.Int64Var(&blockCache, "block-cache-bytes", 64<<20, "image chunks kept in memory, shared by all transfers (-1: none)")
	mq.register(cmd)
	fl.Float64Var(&timeScale, "time-scale", 1, "simulated seconds per real second for rollouts (needs --sim)")
	fl.BoolVar(&sim, "sim", false, "this gateway serves a simulated fleet (allows --time-scale)")
	return cmd
}
