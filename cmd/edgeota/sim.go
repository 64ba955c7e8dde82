package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"edgeota/firmware-sim/fleet"
	"edgeota/firmware-sim/scenario"
)

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run simulated fleets: hundreds of virtual nodes against a real gateway",
		Args:  noArgs,
		RunE:  showHelp,
	}
	var seed uint64
	var junit, gw, mqttURL, keyFile, cpuProfile, memProfile string
	var api adminFlags
	var quiet, asJSON, noDeltas bool
	run := &cobra.Command{
		Use:   "run SCENARIO.yaml [--seed N] [--junit FILE]",
		Short: "Run a scenario and check its expectations",
		Long: `Run a fleet scenario: every virtual node is the real node agent on its own
simulated NOR flash, behind its own lossy radio link, talking CoAP to a real
gateway that relays health over a real (embedded) MQTT broker, all in this
process. Time is compressed (the scenario's time_scale), so bakes and
probations of minutes run in seconds. Deployments are applied and faults
(power cuts, gateway restarts, broker and link outages, reboots) strike
when the scenario says.

It shows a progress line every second, prints a summary table (with --json,
one JSON document instead: the verdict, every expectation, rollout and
node), writes JUnit XML with --junit (one test case per expectation), and
exits 1 when an expectation fails. The seed is printed: --seed N replays a run's random
choices.

With --gateway, --admin and --mqtt the fleet runs against a gateway and a
broker that are already running (started with --sim --time-scale N, the
scenario's time scale, and trusting --key for manifests and deployments:
--trust and --deploy-trust; --token-file when it has --admin-token-file);
the run's nodes, cohorts and deployments are scoped to it with a sim_run
label, so the gateway can be shared. A transport dtls scenario takes a
coaps:// --gateway: the run registers its nodes' keys in that gateway's
registry and deletes them at its end (give the gateway
--max-handshakes-per-source of twice the fleet or more). Faults that
restart the gateway or the broker need the in-process ones. Scenarios shipped with edgeota are in firmware-sim/scenarios;
docs/simulator.md teaches writing your own.`,
		Example: "  edgeota sim run firmware-sim/scenarios/bad-model.yaml --junit report.xml",
		Args:    exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := scenario.Load(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			errw := cmd.ErrOrStderr()
			tty := false
			if f, ok := errw.(*os.File); ok {
				tty = term.IsTerminal(int(f.Fd()))
			}
			opts := fleet.Options{Seed: seed, Logger: loggerFrom(cmd).With("component", "gateway"), Gateway: gw, MQTT: mqttURL, NoDeltas: noDeltas}
			if gw != "" || api.url != "" || mqttURL != "" {
				if gw == "" || api.url == "" || mqttURL == "" || keyFile == "" {
					return usagef("a running gateway needs --gateway, --admin, --mqtt and --key")
				}
				if opts.Admin, err = api.client(); err != nil {
					return err
				}
				if opts.Key, err = readPrivateKey(keyFile); err != nil {
					return err
				}
			}
			if lvl, _ := cmd.Flags().GetString("log-level"); lvl == "info" {
				opts.Logger = nil // the gateway's info logs would drown the progress
			}
			if !quiet {
				opts.Progress = func(line string) {
					if tty {
						fmt.Fprintf(errw, "\r\033[K%s", line)
					} else {
						fmt.Fprintln(errw, line)
					}
				}
			}
			s := seed
			if s == 0 {
				s = sc.Seed
			}
			fmt.Fprintf(errw, "scenario %s: %d nodes, time x%g, seed %s\n", sc.Name, countNodes(sc), sc.TimeScale, seedText(s))
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				opts.HeapProfile = f
			}
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			res, err := fleet.Run(cmd.Context(), sc, opts)
			if perr := stopProfile(); err == nil {
				err = perr
			}

			if tty && !quiet {
				fmt.Fprintln(errw)
			}
			if err != nil {
				return err
			}
			outs := scenario.Evaluate(sc, res)
			if asJSON {
				if err := scenario.WriteJSON(out, sc, res, outs); err != nil {
					return err
				}
			} else {
				scenario.WriteSummary(out, sc, res, outs)
			}
			if junit != "" {
				f, err := os.Create(junit)
				if err != nil {
					return err
				}
				if err := scenario.WriteJUnit(f, sc, res, outs); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			if !scenario.Passed(outs) {
				return &silentExit{code: 1}
			}
			return nil
		},
	}
	run.Flags().Uint64Var(&seed, "seed", 0, "seed of every random choice (default: the scenario's, or a new one, printed)")
	run.Flags().StringVar(&junit, "junit", "", "write JUnit XML to FILE")
	run.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	run.Flags().BoolVar(&noDeltas, "no-deltas", false, "every node takes full images only (edgeota node --delta=false), whatever its fleet group says: the same run without deltas, to compare the bytes on air")
	run.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON instead of the summary (the exit status still says whether every expectation passed)")
	run.Flags().StringVar(&gw, "gateway", "", "a running gateway's CoAP URL, coap://HOST:PORT, or coaps://HOST:PORT for a transport dtls scenario (instead of one in-process)")
	api.register(run.Flags(), "", "that gateway's admin API URL (with --token-file and --admin-ca when it requires them)")
	run.Flags().StringVar(&mqttURL, "mqtt", "", "that gateway's MQTT broker, tcp://HOST:PORT")
	run.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run (simulator, and the in-process gateway and broker) to FILE, for go tool pprof")
	run.Flags().StringVar(&memProfile, "mem-profile", "", "write a heap profile to FILE once every node has said Hello, for go tool pprof")
	run.Flags().StringVar(&keyFile, "key", "", "the key that gateway trusts for manifests and deployments (PKCS#8 PEM)")
	cmd.AddCommand(run)
	return cmd
}

func countNodes(sc *scenario.Scenario) int {
	n := 0
	for _, g := range sc.Fleet {
		n += g.Count
	}
	return n
}

func seedText(s uint64) string {
	if s == 0 {
		return "random (printed in the summary)"
	}
	return fmt.Sprint(s)
}

// startCPUProfile starts a CPU profile into file (nothing when file is
// empty) and returns what stops it and closes the file.
func startCPUProfile(file string) (func() error, error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
