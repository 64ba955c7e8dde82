package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"edgeota/gateway/admin"
)

func newDeployApplyCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "apply --admin URL D.cose",
		Short: "Hand a signed deployment to a gateway: its rollout starts",
		Long: `Hand a signed deployment (edgeota deploy sign) to a gateway's admin API.
The gateway verifies it (deployment keys, expiry, gateways named, a seq
above the highest applied, the manifests) and starts its rollout: canary
waves over the cohort, health gates, pause or rollback on a red gate. A
refused deployment changes nothing and the reason is printed.

Follow it with 'edgeota rollout status ID --follow'.`,
		Example: "  edgeota deploy apply --admin http://127.0.0.1:8080 rollout.cose",
		Args:    exactArgs(1, "one signed deployment (D.cose)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			st, err := c.PostDeployment(cmd.Context(), b)
			if err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollout %s started: %s %s (seq %d) to %q in %d waves\n", st.ID, st.Component, st.Version, st.ManifestSeq, st.Cohort, len(st.Waves))
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rollout's status as JSON")
	return cmd
}

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow and control a gateway's rollouts (canary waves)",
		Long: `Follow and control the rollouts a gateway runs: list them, show one's
waves (nodes targeted, downloading, in trial, confirmed, succeeded,
reverted, failed, timed out, offline, rolled back), its gates against their
bounds and every decision with its reason; pause, resume or abort one.`,
		Args: noArgs,
		RunE: showHelp,
	}
	var api adminFlags
	var asJSON, follow bool
	client := api.client
	list := &cobra.Command{
		Use:   "list --admin URL [--json]",
		Short: "List the rollouts",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			sts, err := c.Rollouts(cmd.Context())
			if err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), sts)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-20s  %-11s  %-10s  %-12s  %4s  %s\n", "ID", "PHASE", "VERSION", "COMPONENT", "WAVE", "NODES")
			for _, st := range sts {
				fmt.Fprintf(w, "%-20s  %-11s  %-10s  %-12s  %d/%d  %s\n", st.ID, st.Phase, st.Version, st.Component, st.Wave, len(st.Waves), totals(st))
			}
			return nil
		},
	}
	var nodes bool
	var nodeState string
	var wave int
	status := &cobra.Command{
		Use:   "status ID --admin URL [--json] [--follow | --nodes [--state S] [--wave W]]",
		Short: "Show a rollout: waves, gates and decisions, or its nodes",
		Long: `Show a rollout's summary: per wave the nodes targeted, downloading, in
trial, confirmed (soaking), succeeded, reverted, failed, timed out, offline
and rolled back; each gate's value against its bound; the latest
decisions. --follow redraws it every second on a terminal until the
rollout ends.

--nodes lists the rollout's nodes instead, by id: each node's wave, state,
since when and why, fetched page by page from the gateway. Narrow it with
  --state S   nodes in state S of the rollout: waiting, assigned, trial,
              confirmed, succeeded, failed, timed-out, rolled-back,
              rollback-stuck or ineligible
  --wave W    nodes placed in wave W (from 1)
--json prints the summary, or with --nodes an array of the nodes.`,
		Example: `  edgeota rollout status kws-1.4 --follow
  edgeota rollout status kws-1.4 --nodes --state failed
  edgeota rollout status kws-1.4 --nodes --wave 2 --json`,
		Args: exactArgs(1, "a rollout id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !nodes {
				for _, f := range []string{"state", "wave"} {
					if cmd.Flags().Changed(f) {
						return usagef("--%s selects nodes: it needs --nodes", f)
					}
				}
			} else if follow {
				return usagef("--follow redraws the summary: it does not go with --nodes")
			}
			c, err := client()
			if err != nil {
				return err
			}
			if nodes {
				v := url.Values{}
				setFlag(cmd, v, "state", nodeState)
				if cmd.Flags().Changed("wave") {
					if wave < 1 {
						return usagef("--wave %d: want a wave number from 1", wave)
					}
					v.Set("wave", strconv.Itoa(wave))
				}
				q, err := admin.ParseRolloutNodeQuery(v)
				if err != nil {
					return usagef("%s", flagWords(err))
				}
				return printRolloutNodes(cmd, c, args[0], q, asJSON, api.explain)
			}
			w := cmd.OutOrStdout()
			tty := false
			if f, ok := w.(*os.File); ok {
				tty = term.IsTerminal(int(f.Fd()))
			}
			for {
				st, err := c.Rollout(cmd.Context(), args[0])
				if err != nil {
					return api.explain(err)
				}
				if asJSON {
					return writeJSON(w, st)
				}
				var buf bytes.Buffer
				printRollout(&buf, st)
				if follow && tty {
					fmt.Fprint(w, "\033[H\033[2J")
				}
				w.Write(buf.Bytes())
				if !follow || st.Phase != admin.PhaseRunning {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				if !tty {
					fmt.Fprintln(w, "---")
				}
			}
		},
	}
	status.Flags().BoolVar(&nodes, "nodes", false, "list the rollout's nodes (every page) instead of its summary")
	status.Flags().StringVar(&nodeState, "state", "", "with --nodes: only nodes in rollout state `S` (waiting, assigned, ..., failed, ineligible)")
	status.Flags().IntVar(&wave, "wave", 0, "with --nodes: only nodes placed in wave `W` (from 1)")
	status.Flags().BoolVar(&follow, "follow", false, "redraw every second until the rollout ends")
	action := func(name admin.Action, short string) *cobra.Command {
		return &cobra.Command{
			Use:   string(name) + " ID --admin URL",
			Short: short,
			Args:  exactArgs(1, "a rollout id"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client()
				if err != nil {
					return err
				}
				st, err := c.RolloutAction(cmd.Context(), args[0], name)
				if err != nil {
					return api.explain(err)
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rollout %s is %s\n", st.ID, st.Phase)
				return nil
			},
		}
	}
	cmd.AddCommand(list, status, action(admin.Pause, "Pause a rollout: no more nodes are assigned"),
		action(admin.Resume, "Resume a paused rollout"), action(admin.Abort, "End a rollout; nodes keep what they run"))
	for _, c := range cmd.Commands() {
		api.register(c.Flags(), defaultAdmin, "the gateway's admin API URL")
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	}
	return cmd
}

func totals(st admin.Rollout) string {
	var parts []string
	for _, k := range []string{"succeeded", "confirmed", "trial", "assigned", "waiting", "failed", "timed-out", "rolled-back", "rollback-stuck", "ineligible"} {
		if n := st.Totals[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	return strings.Join(parts, ", ")
}

func printRollout(w io.Writer, st admin.Rollout) {
	fmt.Fprintf(w, "rollout %s (seq %d): %s\n", st.ID, st.Seq, st.Phase)
	fmt.Fprintf(w, "  %s %s (manifest seq %d, %s…) to %q, wave %d of %d\n", st.Component, st.Version, st.ManifestSeq, st.Digest[:12], st.Cohort, st.Wave, len(st.Waves))
	fmt.Fprintf(w, "  %-4s %7s %6s  %8s %7s %5s %9s %9s %8s %6s %8s %7s %11s\n", "WAVE", "PERCENT", "BAKE", "TARGETED", "WAITING",
		"DOWN", "TRIAL", "CONFIRMED", "SUCCEEDED", "REVERT", "FAILED", "TIMEOUT", "OFFLINE/RB")
	for _, wv := range st.Waves {
		mark := " "
		if wv.Wave == st.Wave {
			mark = ">"
		}
		fmt.Fprintf(w, " %s%-4d %6s%% %5ds  %8d %7d %5d %9d %9d %8d %6d %8d %7d %5d/%-5d\n", mark, wv.Wave, wv.Percent, wv.BakeSeconds,
			wv.Targeted, wv.Waiting, wv.Downloading, wv.Trial, wv.Confirmed, wv.Succeeded, wv.Reverted, wv.Failed, wv.TimedOut, wv.Offline, wv.RolledBack)
	}
	if st.Ineligible > 0 {
		fmt.Fprintf(w, "  ineligible: %d nodes do not meet the manifest's requires (never assigned, not failed)\n", st.Ineligible)
	}
	if t := st.Transfers; t.Delta+t.Full > 0 {
		fmt.Fprintf(w, "  transfers: %d delta, %d full image (%d fell back from a delta); %s fetched\n", t.Delta, t.Full, t.Fallback,
			bytesText(t.FetchedBytes))
	}
	if len(st.Gates) > 0 {
		fmt.Fprintln(w, "  gates:")
		for _, g := range st.Gates {
			ok := "ok"
			if !g.OK {
				ok = "RED"
			}
			fmt.Fprintf(w, "    %-24s %-32s bound %-10s %s\n", g.Name, g.Value, g.Bound, ok)
		}
	}
	fmt.Fprintln(w, "  decisions (latest last):")
	ds := st.Decisions
	if len(ds) > 12 {
		ds = ds[len(ds)-12:]
	}
	for _, d := range ds {
		who := ""
		if d.Node != "" {
			who = d.Node + ": "
		}
		fmt.Fprintf(w, "    %s  %s%s\n", d.At.UTC().Format("15:04:05"), who, d.What)
	}
}

// printRolloutNodes lists every node of rollout id that q selects, page
// by page: a table, or with asJSON an array.
func printRolloutNodes(cmd *cobra.Command, c *admin.Client, id string, q admin.RolloutNodeQuery, asJSON bool, explain func(error) error) error {
	q.Limit = admin.MaxPageLimit
	ns := []admin.RolloutNode{}
	for n, err := range c.AllRolloutNodes(cmd.Context(), id, q) {
		if err != nil {
			return explain(err)
		}
		ns = append(ns, n)
	}
	w := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(w, ns)
	}
	fmt.Fprintf(w, "%-16s  %4s  %-14s  %-20s  %-17s  %s\n", "NODE", "WAVE", "STATE", "SINCE", "TRANSFER", "REASON")
	for _, n := range ns {
		wave := "-"
		if n.Wave > 0 {
			wave = strconv.Itoa(n.Wave)
		}
		since := "-"
		if !n.Since.IsZero() {
			since = n.Since.UTC().Format(time.RFC3339)
		}
		reason := n.Reason
		if n.Fallback != "" {
			reason = strings.TrimPrefix(reason+"; ", "; ") + "delta abandoned: " + n.Fallback
		}
		line := fmt.Sprintf("%-16s  %4s  %-14s  %-20s  %-17s  %s", n.ID, wave, n.State, since,
			transferText(n.Transfer, n.Fallback, n.FetchedBytes), reason)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	return nil
}
