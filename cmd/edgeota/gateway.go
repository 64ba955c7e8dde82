package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"edgeota/firmware-sim/clock"
	"edgeota/gateway"
)

// applyConfigFile sets, from the YAML file at path, every flag the command
// line did not set. The file is a mapping whose keys are the command's flag
// names (its own and the persistent ones such as log-format), each value a
// scalar or, for a flag that repeats (trust), a list. A key that names no
// flag, or a key given twice, is an error that says its line.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: want a mapping of flag names to values", path, m.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		name := key.Value
		fl := cmd.Flags().Lookup(name)
		if fl == nil || name == "config" || name == "help" {
			return fmt.Errorf("%s: line %d: unknown key %q: the keys are the flag names of %s", path, key.Line, name, cmd.CommandPath())
		}
		if first, ok := seen[name]; ok {
			return fmt.Errorf("%s: line %d: key %q given again (first on line %d)", path, key.Line, name, first)
		}
		seen[name] = key.Line
		if fl.Changed {
			continue // the command line wins
		}
		var vals []string
		switch val.Kind {
		case yaml.ScalarNode:
			vals = []string{val.Value}
		case yaml.SequenceNode:
			for _, c := range val.Content {
				if c.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s: line %d: %s: want a value or a list of values", path, c.Line, name)
				}
				vals = append(vals, c.Value)
			}
		default:
			return fmt.Errorf("%s: line %d: %s: want a value or a list of values", path, val.Line, name)
		}
		for _, v := range vals {
			if err := fl.Value.Set(v); err != nil {
				return fmt.Errorf("%s: line %d: %s: %w", path, val.Line, name, err)
			}
		}
	}
	return nil
}

func newGatewayCmd() *cobra.Command {
	var cfgFile, data, admin string
	var trust, trustRoots []string
	var trustThreshold uint64
	var cacheMax int64
	var maxTransfers, maxPerNode, maxNodes int
	var blockCache int64
	var qMaxPayloads int
	var qNonTimeout time.Duration
	var deltaCache int64
	var mq mqttFlags
	var adminSec adminServeFlags
	var sec coapFlags
	var timeScale float64
	var sim bool
	cmd := &cobra.Command{
		Use:   "gateway --data DIR --trust KEY.pub [--coaps ADDR] [--admin ADDR]",
		Short: "Run the edge gateway: signed-model cache, CoAP service to nodes, admin API",
		Long: `Run the edge gateway.

It caches signed models in a bbolt database under --data, accepting a model
only when its manifest verifies against a --trust key and the image's digest
and size match. It serves nodes over CoAP over DTLS 1.2 (--coaps, default
:5684): images block-wise (RFC 7959) at the block size a node asks, each
node's assigned manifest with Observe (RFC 7641), and node Hello, health
reports and status events. Each node authenticates with its own pre-shared
key, its PSK identity being its node id, and may touch only its own
/n/{id}/ resources; import keys with 'edgeota gateway keys import'. Plain
CoAP on UDP (--coap, default :5683) is served only with --insecure-udp,
for development and simulators, and the log says so loudly.

Limits keep it serving under abuse: requests per second per source address
(--rate-source) and per node (--rate-node), answered 4.29 beyond; concurrent
transfers in total and per node (5.03 beyond); node document size
(--max-body, 4.13 beyond); DTLS sessions and handshakes in progress; the
node registry (--max-nodes, default 20000: twice the 10,000 nodes a
gateway is sized for): once it holds that many nodes, a Hello from a new
node id is answered 5.03 with Max-Age 60 and nothing is stored, so a flood
of new ids cannot grow the database, while known nodes are served as
before. Blocks of a transfer already started are never refused. Every
limit is exported as the edgeota_limit metric, every refusal in
edgeota_refused_total.

With --mqtt the gateway forwards every health report and status event
upstream (docs/protocol.md section 6) in CBOR batches, through a durable bbolt
outbox: a report is on disk before its node gets 2.04 and leaves only when
the broker acknowledged it, so a broker outage or a kill -9 loses nothing.
--mqtt embedded runs a broker inside the gateway on 127.0.0.1 (a free port,
logged), for machines without one. Signed deployments arrive on the
retained deployment topics and are verified with --deploy-trust.

The admin API (--admin, default 127.0.0.1:8080, JSON over HTTP) takes models
(edgeota model push), assignments, lists nodes (edgeota nodes) and models,
serves Prometheus metrics at /metrics and a consistent database backup at
/v1/backup while running ('edgeota gateway backup', which also backs up a
stopped gateway's --data; 'edgeota gateway restore' puts a backup back). --admin-token-file FILE requires a bearer token on
every admin request, /healthz and /metrics included (the gateway creates
FILE, mode 0600, with a new token when it does not exist; operators pass it
with --token-file); beyond loopback the gateway refuses to start without
one. --admin-cert and --admin-key make it HTTPS.

Every flag can also come from a YAML file (--config); its keys are the flag
names, and flags given on the command line win. SIGHUP reads the file
again: the log level and the admin token file (read again, so a rotated
token holds) take effect at once; any other setting that changed is
logged as taking effect at the next restart, and a file that does not
apply whole is refused, the running settings staying. Started by systemd
with Type=notify, the gateway says READY=1 once it serves and feeds the
watchdog (WatchdogSec) while its housekeeping loop advances.`,
		Example: `  edgeota gateway keys import --data /var/lib/edgeota nodes.csv
  edgeota gateway --data /var/lib/edgeota --trust operator.pub --coaps :5684 --admin 127.0.0.1:8080

  # development only: plain CoAP as well
  edgeota gateway --data ./gw --trust operator.pub --insecure-udp --coap 127.0.0.1:5683

  # gateway.yaml
  data: /var/lib/edgeota
  trust: [operator.pub]
  coaps: ":5684"
  rate-node: 20
  cache-max-bytes: 1073741824`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmdLine := commandLineFlags(cmd.Flags())
			if cfgFile != "" {
				if err := applyConfigFile(cmd, cfgFile); err != nil {
					return usagef("--config: %v", err)
				}
			}
			if timeScale != 1 {
				if !(timeScale > 0) || math.IsInf(timeScale, 1) {
					return usagef("--time-scale %g: want a positive number of simulated seconds per real second", timeScale)
				}
				if !sim {
					return usagef("--time-scale %g needs --sim: compressed time is for simulations, never production", timeScale)
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
			log, level := leveledLogger(cmd)
			roots, err := readPublicKeys(trustRoots)
			if err != nil {
				return err
			}
			gc := gateway.Config{DataDir: data, AdminAddr: admin, TrustKeys: keys, TrustRoots: roots, TrustThreshold: trustThreshold,
				CacheMaxBytes: cacheMax, MaxTransfers: maxTransfers, MaxTransfersPerNode: maxPerNode, MaxNodes: maxNodes, BlockCacheBytes: blockCache, DeltaCacheMaxBytes: deltaCache, Logger: log,
				QBlock: gateway.QBlockParams{MaxPayloads: qMaxPayloads, NonTimeout: qNonTimeout}}
			if err := sec.apply(cmd, &gc); err != nil {
				return err
			}
			if err := mq.apply(&gc); err != nil {
				return err
			}
			if err := adminSec.apply(&gc, log); err != nil {
				return err
			}
			if timeScale != 1 {
				gc.Clock = clock.NewScaled(clock.Real{}, timeScale)
				log.Warn("SIMULATION: the gateway's clock runs faster than real time", "time_scale", timeScale)
			}
			// SIGHUP reloads (gateway_reload.go); caught before New, so
			// that one sent early does not end the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			g, err := gateway.New(gc)
			if err != nil {
				return withFlagHint(err)
			}
			ctx := cmd.Context()
			r := newGatewayReloader(cmd, cfgFile, cmdLine, gc.AdminToken, level, g, log)
			watchdog, stopWatchdog := watchdogTicks(log)
			defer stopWatchdog()
			sctx, stopSupervising := context.WithCancel(ctx)
			supervised := make(chan struct{})
			go func() {
				defer close(supervised)
				supervise(sctx, g, &sdNotifier{log: log}, watchdog, hup, r.reload, log)
			}()
			err = g.Run(ctx)
			stopSupervising() // STOPPING=1, also when Run failed on its own
			<-supervised
			if errors.Is(err, ctx.Err()) {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgFile, "config", "", "YAML file with any of these flags (keys are the flag names)")
	fl.StringVar(&data, "data", "", "directory of the gateway's database")
	sec.register(fl)
	fl.StringVar(&admin, "admin", "127.0.0.1:8080", "TCP address of the admin API (- to disable; beyond loopback it needs --admin-token-file)")
	adminSec.register(fl)
	fl.StringArrayVar(&trust, "trust", nil, "trusted manifest key (PKIX PEM); repeat for several")
	fl.StringArrayVar(&trustRoots, "trust-root", nil, "root key (PKIX PEM, Ed25519 or P-256) that may sign the first trust update (edgeota trust push); repeat for several")
	fl.Uint64Var(&trustThreshold, "trust-threshold", 1, "how many --trust-root keys must sign the first trust update")
	fl.Int64Var(&cacheMax, "cache-max-bytes", 0, "bound on cached images; least recently used unassigned images are evicted (0: none)")
	fl.IntVar(&maxTransfers, "max-transfers", 512, "concurrent image transfers in total")
	fl.IntVar(&maxPerNode, "max-transfers-per-node", 2, "concurrent image transfers per node")
	fl.IntVar(&maxNodes, "max-nodes", gateway.DefaultMaxNodes, "nodes the registry holds; beyond, a new node's Hello gets 5.03 (-1: no bound)")
	fl.Int64Var(&blockCache, "block-cache-bytes", 64<<20, "image chunks kept in memory, shared by all transfers (-1: none)")
	fl.IntVar(&qMaxPayloads, "qblock-max-payloads", 10, "RFC 9177 MAX_PAYLOADS: blocks of one Q-Block2 burst (the nodes must use the same)")
	fl.DurationVar(&qNonTimeout, "qblock-non-timeout", 2*time.Second, "RFC 9177 NON_TIMEOUT: the least pause between two Q-Block2 bursts a node did not ask for")
	fl.Int64Var(&deltaCache, "delta-cache-max-bytes", 64<<20, "bound on the deltas computed between cached images and offered to nodes (-1: no deltas)")
	mq.register(cmd)
	fl.Float64Var(&timeScale, "time-scale", 1, "simulated seconds per real second for rollouts (needs --sim)")
	fl.BoolVar(&sim, "sim", false, "this gateway serves a simulated fleet (allows --time-scale)")
	cmd.AddCommand(newGatewayKeysCmd(), newGatewayBackupCmd(), newGatewayRestoreCmd())
	return cmd
}

// withFlagHint adds to an error of the gateway library the flag that
// answers it.
func withFlagHint(err error) error {
	switch {
	case errors.Is(err, gateway.ErrNoCoAP):
		return fmt.Errorf("%w: give a DTLS address (--coaps) or, for development, --insecure-udp", err)
	case errors.Is(err, gateway.ErrNoDeploymentKeys):
		return fmt.Errorf("%w: give the deployment keys (--deploy-trust)", err)
	case errors.Is(err, gateway.ErrAdminNoToken):
		return fmt.Errorf("%w: give the gateway a token (--admin-token-file FILE, created when missing) or listen on 127.0.0.1", err)
	case errors.Is(err, gateway.ErrAdminTokenShort):
		return fmt.Errorf("%w: let the gateway generate one (--admin-token-file on a file that does not exist yet)", err)
	}
	return err
}
