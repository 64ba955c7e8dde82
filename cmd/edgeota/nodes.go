package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"edgeota/gateway/admin"
	"edgeota/protocol"
)

func newNodesCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	var labels []string
	var cohortExpr, model, state, after string
	var limit int
	cmd := &cobra.Command{
		Use:   "nodes --admin URL [--label K=V]... [--cohort EXPR] [--model M] [--state S] [--limit N [--after ID]] [--json]",
		Short: "List the nodes a gateway knows, with what they run",
		Long: `List the nodes that said Hello to a gateway: labels, the manifest each runs
(seq, slot, trial or confirmed), its epoch floor, its last state, the
manifest assigned to it, how it fetched its latest update (TRANSFER: a
delta or the full image, and the bytes it fetched; "fallback" when it
abandoned a delta for the full image, --json says why), and when it was
last seen, by node id.

The gateway filters (every filter given must hold) and answers in pages of
at most ` + strconv.Itoa(admin.MaxPageLimit) + ` nodes:
  --label K=V     nodes with label K set to V; repeat for several labels
  --cohort EXPR   nodes in a cohort, in a deployment's cohort language,
                  such as 'site:north AND NOT hw:rev1'
  --model M       nodes running model M: a version of a model the gateway
                  caches (1.4.0), or 8 to 64 hex digits starting the
                  running image's digest
  --state S       nodes whose last status event announced S: idle (also
                  a node that never posted one), downloading, downloaded,
                  verified, pending, trial, confirmed, reverted, failed,
                  provisioned or trusted (took a trust update)

Without --limit every page is fetched and listed (--json: an array of
nodes). With --limit N one page of at most N nodes is listed, from the
first or after --after ID (--json: the page, {"nodes", "next", "total"});
the line after the table names the --after of the next page.`,
		Example: `  edgeota nodes --admin http://127.0.0.1:8080
  edgeota nodes --label site=north --state failed
  edgeota nodes --cohort 'hw:rev2 AND NOT site:lab' --model 1.4.0 --json
  edgeota nodes --limit 50 --after node-0049`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := url.Values{"label": labels}
			setFlag(cmd, v, "cohort", cohortExpr)
			setFlag(cmd, v, "model", model)
			setFlag(cmd, v, "state", state)
			setFlag(cmd, v, "after", after)
			if cmd.Flags().Changed("limit") {
				if limit < 1 {
					return usagef("--limit %d: want a page size from 1 to %d", limit, admin.MaxPageLimit)
				}
				v.Set("limit", strconv.Itoa(limit))
			}
			if after != "" && !cmd.Flags().Changed("limit") {
				return usagef("--after needs --limit (without it every page is listed)")
			}
			q, err := admin.ParseNodeQuery(v)
			if err != nil {
				return usagef("%s", flagWords(err))
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if cmd.Flags().Changed("limit") {
				p, err := c.Nodes(cmd.Context(), q)
				if err != nil {
					return api.explain(err)
				}
				if asJSON {
					if p.Nodes == nil {
						p.Nodes = []admin.Node{}
					}
					return writeJSON(w, p)
				}
				printNodes(w, p.Nodes)
				printPageEnd(w, len(p.Nodes), p.Total, p.Next)
				return nil
			}
			q.Limit = admin.MaxPageLimit
			ns := []admin.Node{}
			for n, err := range c.AllNodes(cmd.Context(), q) {
				if err != nil {
					return api.explain(err)
				}
				ns = append(ns, n)
			}
			if asJSON {
				return writeJSON(w, ns)
			}
			printNodes(w, ns)
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	fl := cmd.Flags()
	fl.StringArrayVar(&labels, "label", nil, "only nodes with label `K=V` (repeat: every one must hold)")
	fl.StringVar(&cohortExpr, "cohort", "", "only nodes in the cohort `EXPR` (a deployment's cohort language)")
	fl.StringVar(&model, "model", "", "only nodes running model `M`: a cached model's version, or 8-64 hex digits of its digest")
	fl.StringVar(&state, "state", "", "only nodes whose last status event announced `S` (idle, downloading, ..., failed, provisioned, trusted)")
	fl.IntVar(&limit, "limit", 0, "list one page of at most `N` nodes (1 to "+strconv.Itoa(admin.MaxPageLimit)+") instead of every page")
	fl.StringVar(&after, "after", "", "with --limit: start the page after node `ID` (the previous page's next)")
	fl.BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// setFlag puts a flag given on the command line into query parameter
// name, so that an empty --model reaches the query's own check.
func setFlag(cmd *cobra.Command, v url.Values, name, value string) {
	if cmd.Flags().Changed(name) {
		v.Set(name, value)
	}
}

// flagWords says an admin query error in the command's words: its
// parameters are the flags of the same name.
func flagWords(err error) string {
	msg := strings.TrimPrefix(err.Error(), admin.ErrBadQuery.Error()+": ")
	for _, p := range []string{"label", "cohort", "model", "state", "wave", "after", "limit"} {
		if strings.HasPrefix(msg, p+" ") || strings.HasPrefix(msg, p+":") {
			return "--" + msg
		}
	}
	return msg
}

func printNodes(w io.Writer, ns []admin.Node) {
	fmt.Fprintf(w, "%-16s  %5s  %4s  %-9s  %5s  %-12s  %8s  %-17s  %-20s  %s\n", "NODE", "SEQ", "SLOT", "STATE", "FLOOR", "LAST", "ASSIGNED",
		"TRANSFER", "LAST SEEN", "LABELS")
	for _, n := range ns {
		assigned := "-"
		if n.AssignedSeq > 0 {
			assigned = fmt.Sprintf("seq %d", n.AssignedSeq)
		}
		xfer := "-"
		if t := n.Transfer; t != nil {
			xfer = transferText(t.Kind, t.Fallback, t.FetchedBytes)
		}
		fmt.Fprintf(w, "%-16s  %5d  %4s  %-9s  %5d  %-12s  %8s  %-17s  %-20s  %s\n", n.ID, n.RunningSeq, n.ActiveSlot, n.ActiveState,
			n.EpochFloor, n.LastState, assigned, xfer, n.LastSeen.Format(time.RFC3339), protocol.FormatLabels(n.Labels))
	}
}

// transferText says how a node fetched an update: "delta 6 KiB", "full
// 64 KiB", or "fallback 69 KiB" for a node that abandoned a delta.
func transferText(kind, fallback string, fetched uint64) string {
	if kind == "" {
		return "-"
	}
	if fallback != "" {
		kind = "fallback"
	}
	return kind + " " + bytesText(fetched)
}

// printPageEnd says, under one page's table, how many of the matching
// nodes it showed and how to ask for the next page.
func printPageEnd(w io.Writer, shown, total int, next string) {
	if next == "" {
		fmt.Fprintf(w, "(%d of %d; last page)\n", shown, total)
		return
	}
	fmt.Fprintf(w, "(%d of %d; next page: --after %s)\n", shown, total, next)
}
