package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"edgeota/protocol/deployspec"
	"edgeota/protocol/sign"
)

func newDeployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Author, sign and apply deployments (rollouts of a manifest to a cohort)",
		Args:  noArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(newDeploySignCmd(), newDeployApplyCmd())
	return cmd
}

func newDeploySignCmd() *cobra.Command {
	var keyFile, out string
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "sign --key K deployment.yaml --out D.cose",
		Short: "Validate a deployment YAML and sign it",
		Long: `Validate a deployment written in YAML and sign it as a COSE_Sign1
(docs/protocol.md section 7), embedding the signed manifest it names.

Units are converted exactly: wave percents (at most 2 decimals) to basis
points, max_error_rate (a fraction, at most 3 decimals) and
max_latency_regression (a factor, at most 3 decimals) to per-mille,
max_latency_p99 to microseconds, bake, node_timeout and expires (Go
durations such as 10m or 72h) to seconds. Issued is now; expires is counted
from it. Unknown fields, waves that do not increase or do not end at 100,
and unparsable cohorts or durations are errors naming the YAML line.

Manifest paths are relative to the YAML file.`,
		Example: `  edgeota deploy sign --key deployer.key rollout.yaml --out rollout.cose

  # rollout.yaml
  id: kws-1.4.0
  seq: 7
  manifest: kws-1.4.0.cose
  target_cohort: region:us-east AND hw:rev2
  waves:
    - {percent: 1, bake: 10m}
    - {percent: 25, bake: 30m}
    - {percent: 100, bake: 0s}
  gates: {max_failed: 2, max_error_rate: 0.02, max_latency_p99: 80ms, min_reports: 3}
  on_failure: rollback
  node_timeout: 30m
  max_concurrent: 20
  expires: 72h`,
		Args: exactArgs(1, "one deployment YAML file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" || out == "" {
				return usagef("--key K and --out D.cose are required")
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			dir := filepath.Dir(args[0])
			d, err := deployspec.Parse(src, time.Now(), func(name string) ([]byte, error) {
				if !filepath.IsAbs(name) {
					name = filepath.Join(dir, name)
				}
				return os.ReadFile(name)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			priv, done, err := openSigningKey(keyFile)
			if err != nil {
				return err
			}
			defer done()
			s, err := sign.NewSigner(priv)
			if err != nil {
				return err
			}
			signed, err := s.SignDeployment(d)
			if err != nil {
				return err
			}
			if err := writeOutput(out, signed, force); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"out": out, "kid": s.KeyID().String(), "deployment": deploymentView(d)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed deployment %s seq %d (%d waves, cohort %q, expires %s) with kid %s -> %s\n",
				d.ID, d.Seq, len(d.Waves), d.Cohort, time.Unix(int64(d.Expires), 0).UTC().Format(time.RFC3339), s.KeyID(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "deployment signing "+keyFlagHelp)
	cmd.Flags().StringVar(&out, "out", "", "signed deployment file to write")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite --out if it exists")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
