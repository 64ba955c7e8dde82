package main

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
)

// backupFixture is a stopped gateway's data directory holding the keys of
// n1 and n2, the key file that imported them, and bad files.
type backupFixture struct {
	dir, data, keys string
	text            string // not a bbolt file
	newer           string // a gateway database of the schema version after this build's
}

func newBackupFixture(t *testing.T) backupFixture {
	t.Helper()
	dir := t.TempDir()
	f := backupFixture{dir: dir, data: filepath.Join(dir, "gw"), keys: filepath.Join(dir, "nodes.csv"),
		text: filepath.Join(dir, "text.db"), newer: filepath.Join(dir, "newer.db")}
	os.WriteFile(f.keys, []byte("node_id,psk\nn1,n1-pre-shared-key-01\nn2,hex:000102030405060708090a0b0c0d0e0f\n"), 0o600)
	mustCLI(t, "gateway", "keys", "import", "--data", f.data, f.keys)
	os.WriteFile(f.text, bytes.Repeat([]byte("not a database\n"), 500), 0o600)
	mustCLI(t, "gateway", "backup", "--data", f.data, f.newer)
	setSchemaVersion(t, f.newer, byte(gateway.SchemaVersion()+1))
	return f
}

// setSchemaVersion writes v as the schema version of the gateway database
// at path, as a newer edgeota would.
func setSchemaVersion(t *testing.T, path string, v byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{v}) }); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayBackupRestore: an offline backup restored into another
// gateway's data directory brings its keys along, and keeps the database
// it replaced as gateway.db.bak.
func TestGatewayBackupRestore(t *testing.T) {
	f := newBackupFixture(t)
	out := filepath.Join(f.dir, "backup.db")
	got := mustCLI(t, "gateway", "backup", "--data", f.data, out)
	if !strings.Contains(got, fmt.Sprintf("(schema version %d) to %s", gateway.SchemaVersion(), out)) {
		t.Fatalf("backup said %q", got)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, st.Mode())
	}
	// Another gateway, with another key.
	other := filepath.Join(f.dir, "other")
	otherKeys := filepath.Join(f.dir, "other.csv")
	os.WriteFile(otherKeys, []byte("node_id,psk\nn9,n9-pre-shared-key-01\n"), 0o600)
	mustCLI(t, "gateway", "keys", "import", "--data", other, otherKeys)

	got = mustCLI(t, "gateway", "restore", "--data", other, out)
	bak := filepath.Join(other, "gateway.db.bak")
	if !strings.Contains(got, fmt.Sprintf("restored %s (schema version %d", filepath.Join(other, "gateway.db"), gateway.SchemaVersion())) || !strings.Contains(got, "kept as "+bak) {
		t.Fatalf("restore said %q", got)
	}
	// The restored database holds n1 and n2 as they were: importing them
	// again changes nothing. The .bak holds n9.
	if got := mustCLI(t, "gateway", "keys", "import", "--data", other, f.keys); !strings.Contains(got, "imported 2 keys (0 new or changed)") {
		t.Fatalf("the restored database lost keys: %q", got)
	}
	restoredBak := filepath.Join(f.dir, "bak")
	mustCLI(t, "gateway", "restore", "--data", restoredBak, bak)
	if got := mustCLI(t, "gateway", "keys", "import", "--data", restoredBak, otherKeys); !strings.Contains(got, "(0 new or changed)") {
		t.Fatalf("gateway.db.bak is not the previous database: %q", got)
	}
}

// TestGatewayBackupOnline: with --admin the running gateway writes the
// backup, which restores into a stopped gateway's data directory.
func TestGatewayBackupOnline(t *testing.T) {
	g, token := startCLIGateway(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	os.WriteFile(tokenFile, []byte(token), 0o600)
	out := filepath.Join(dir, "online.db")
	got := mustCLI(t, "gateway", "backup", "--admin", "http://"+g.AdminAddr().String(), "--token-file", tokenFile, out)
	if !strings.Contains(got, "to "+out) {
		t.Fatalf("backup said %q", got)
	}
	mustCLI(t, "gateway", "restore", "--data", filepath.Join(dir, "gw"), out)
}

func TestGatewayBackupRefuses(t *testing.T) {
	f := newBackupFixture(t)
	running := filepath.Join(f.dir, "running")
	os.MkdirAll(running, 0o700)
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	gatewaytest.Start(t, gateway.Config{DataDir: running, Trust: []ed25519.PublicKey{trust}, CoAPSAddr: "127.0.0.1:0", AdminAddr: "-",
		Logger: slog.New(slog.DiscardHandler)})
	garbage := filepath.Join(f.dir, "garbage")
	os.MkdirAll(garbage, 0o700)
	os.WriteFile(filepath.Join(garbage, "gateway.db"), []byte("garbage"), 0o600)
	newerDir := filepath.Join(f.dir, "newer")
	mustCLI(t, "gateway", "restore", "--data", newerDir, filepath.Join(f.data, "gateway.db"))
	setSchemaVersion(t, filepath.Join(newerDir, "gateway.db"), byte(gateway.SchemaVersion()+1))
	exists := filepath.Join(f.dir, "exists.db")
	os.WriteFile(exists, []byte("keep me"), 0o600)
	out := func(name string) string { return filepath.Join(f.dir, name) }

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"gateway running", []string{"--data", running, out("a.db")}, 1, "the gateway is running and holds its database: back it up through its admin API"},
		{"not a bbolt file", []string{"--data", garbage, out("b.db")}, 1, "not a gateway database"},
		{"no database", []string{"--data", filepath.Join(f.dir, "missing"), out("c.db")}, 1, "no such file or directory"},
		{"output exists", []string{"--data", f.data, exists}, 1, "already exists; refusing to overwrite it (--force)"},
		{"data and admin", []string{"--data", f.data, "--admin", "http://127.0.0.1:1", out("d.db")}, 2, "either --data DIR"},
		{"no output", []string{"--data", f.data}, 2, "wants one output file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := cli(t, append([]string{"gateway", "backup"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, %q; want %d and %q", code, errs, tc.code, tc.want)
			}
			if b, _ := os.ReadFile(exists); string(b) != "keep me" {
				t.Fatal("a refused backup overwrote a file")
			}
			if n, _ := filepath.Glob(filepath.Join(f.dir, "*.tmp-*")); len(n) > 0 {
				t.Fatalf("a refused backup left %v", n)
			}
		})
	}

	// A database of a newer schema is copied faithfully, with a note.
	got := mustCLI(t, "gateway", "backup", "--data", newerDir, out("newer-copy.db"))
	if !strings.Contains(got, fmt.Sprintf("schema version %d is newer than this edgeota's %d", gateway.SchemaVersion()+1, gateway.SchemaVersion())) {
		t.Fatalf("backup of a newer database said %q", got)
	}
}

func TestGatewayRestoreRefuses(t *testing.T) {
	f := newBackupFixture(t)
	good := filepath.Join(f.dir, "good.db")
	mustCLI(t, "gateway", "backup", "--data", f.data, good)
	running := filepath.Join(f.dir, "running")
	os.MkdirAll(running, 0o700)
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	gatewaytest.Start(t, gateway.Config{DataDir: running, Trust: []ed25519.PublicKey{trust}, CoAPSAddr: "127.0.0.1:0", AdminAddr: "-",
		Logger: slog.New(slog.DiscardHandler)})

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not a bbolt file", []string{"--data", f.data, f.text}, 1, "not a gateway database"},
		{"newer schema", []string{"--data", f.data, f.newer}, 1, fmt.Sprintf("the gateway database has schema version %d and this edgeota supports versions up to %d", gateway.SchemaVersion()+1, gateway.SchemaVersion())},
		{"a bbolt file of something else", []string{"--data", f.data, outboxFile(t)}, 1, "not a gateway database: no bucket models"},
		{"gateway running", []string{"--data", running, good}, 1, "the gateway is running and holds its database: stop it before restoring"},
		{"no data", []string{good}, 2, "--data DIR is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(f.data, "gateway.db")
			before, _ := os.ReadFile(db)
			_, errs, code := cli(t, append([]string{"gateway", "restore"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, %q; want %d and %q", code, errs, tc.code, tc.want)
			}
			if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
				t.Fatal("a refused restore changed the database")
			}
			if _, err := os.Stat(db + ".bak"); err == nil {
				t.Fatal("a refused restore made a .bak")
			}
		})
	}
}

// outboxFile returns a bbolt file laid out as an outbox: a database, but
// not a gateway database.
func outboxFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"meta", "health", "events"} {
			tx.CreateBucket([]byte(b))
		}
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{1})
	})
	return path
}
