package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"edgeota/gateway"
)

func newGatewayBackupCmd() *cobra.Command {
	var t gatewayTarget
	var force bool
	cmd := &cobra.Command{
		Use:   "backup (--data DIR | --admin URL) OUT",
		Short: "Write a consistent copy of a gateway's database to a file",
		Long: `Write a consistent copy of a gateway's database (gateway.db: models, nodes,
keys, assignments, rollouts) to OUT, from one bbolt read transaction.

With --admin URL the running gateway writes it through its admin API
(GET /v1/backup) while it goes on serving. With --data DIR the gateway must
be stopped: the file is opened read-only, and the command refuses while a
gateway holds it. The copy keeps its schema version; a newer edgeota
migrates it when it opens it, an older one refuses it.

OUT is written beside itself and renamed into place, mode 0600: it holds
the nodes' keys, so keep it as you keep them. outbox.db (reports not yet
forwarded upstream) is not part of it.`,
		Example: `  edgeota gateway backup --admin http://127.0.0.1:8080 --token-file admin.token gateway-backup.db
  systemctl stop edgeota-gateway
  edgeota gateway backup --data /var/lib/edgeota gateway-backup.db`,
		Args: exactArgs(1, "one output file (OUT)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := t.check(); err != nil {
				return err
			}
			out := args[0]
			if !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite it (--force)", out)
				}
			}
			var version, n int64
			err := writeAtomic(out, 0o600, func(w io.Writer) error {
				if t.data != "" {
					v, k, err := gateway.Backup(t.data, w)
					version, n = int64(v), k
					return err
				}
				c, err := t.admin.client()
				if err != nil {
					return err
				}
				n, err = c.Backup(cmd.Context(), w)
				return t.admin.explain(err)
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if t.data == "" {
				fmt.Fprintf(w, "backed up the gateway's database at %s to %s (%d bytes)\n", t.admin.base(), out, n)
				return nil
			}
			fmt.Fprintf(w, "backed up %s (schema version %d) to %s (%d bytes)\n", filepath.Join(t.data, gateway.DatabaseFile), version, out, n)
			if uint64(version) > gateway.SchemaVersion() {
				fmt.Fprintf(w, "note: schema version %d is newer than this edgeota's %d: only a newer edgeota restores or opens it\n",
					version, gateway.SchemaVersion())
			}
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "overwrite OUT if it exists")
	return cmd
}

func newGatewayRestoreCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "restore --data DIR IN",
		Short: "Replace a stopped gateway's database with a backup",
		Long: `Replace the database (gateway.db) of a gateway that is not running with a
copy of the backup IN.

IN must be a gateway database of a schema version this edgeota opens (the
same or an older one; an older one is migrated when the gateway starts): a
file that is not, or that a newer edgeota wrote, is refused and nothing
changes. The current gateway.db is kept as gateway.db.bak (replacing an
older .bak), then the copy is renamed over it in one atomic step. The
command refuses while a gateway holds the database: stop it first.
outbox.db is left as it is.`,
		Example: `  systemctl stop edgeota-gateway
  edgeota gateway restore --data /var/lib/edgeota gateway-backup.db
  systemctl start edgeota-gateway`,
		Args: exactArgs(1, "one backup file (IN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return usagef("--data DIR is required: restore works on a stopped gateway's data directory")
			}
			res, err := gateway.Restore(data, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "restored %s (schema version %d, %d bytes) from %s\n", filepath.Join(data, gateway.DatabaseFile), res.Version, res.Bytes, args[0])
			if res.Previous != "" {
				fmt.Fprintf(w, "the previous database is kept as %s\n", res.Previous)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "data directory of a gateway that is not running")
	return cmd
}

// writeAtomic writes a file through write: into a temporary file beside
// name (mode perm), flushed to disk and renamed over name only when write
// succeeded, so that name is never half written.
func writeAtomic(name string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
