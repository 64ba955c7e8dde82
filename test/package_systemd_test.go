package test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The packages under a running systemd: the Debian root of TestPackage
// booted with systemd-nspawn (its own systemd 252 as PID 1, a private
// network with loopback only), where a oneshot unit installs the .deb,
// starts the gateway and a node agent from their units, reloads, starves
// the watchdog, upgrades with both running, removes and purges, writing
// what it saw as KEY=VALUE lines that the test then checks.

// underSystemdScript runs in the booted root; $1 and $2 are the .deb of
// the first and the later version. Its unit powers the root off when it
// ends, or after 4 minutes.
const underSystemdScript = `#!/bin/sh
exec >/root/facts 2>&1
fact() { echo "$1=$2"; }
T="--admin http://127.0.0.1:8080 --token-file /var/lib/edgeota/admin.token"
show() { systemctl show -p "$2" --value "$1"; }

dpkg -i "$1" >/root/dpkg.log 2>&1; fact install_rc $?
fact enabled_after_install "$(systemctl is-enabled edgeota-gateway)"
fact active_after_install "$(systemctl is-active edgeota-gateway)"

systemctl enable --now edgeota-gateway; fact start_rc $?
# Type=notify: start returned after READY=1, so the admin API answers now.
edgeota healthcheck $T >/dev/null 2>&1; fact health_after_start $?
fact watchdog_usec "$(show edgeota-gateway WatchdogUSec)"

printf 'node_id,psk\nn1,hex:000102030405060708090a0b0c0d0e0f\n' >/root/nodes.csv
edgeota gateway keys import $T /root/nodes.csv >/dev/null; fact keys_rc $?
systemctl start edgeota-node@n1; fact node_start_rc $?
seen=no
for i in $(seq 1 60); do
	if edgeota nodes $T 2>/dev/null | grep -q '^n1 '; then seen=yes; break; fi
	sleep 0.5
done
fact node_seen "$seen"

sed -i 's/^log-level: info$/log-level: debug/; s/^coaps: ":5684"$/coaps: ":5684"\nrate-node: 9/' /etc/edgeota/gateway.yaml
systemctl reload edgeota-gateway; fact reload_rc $?
fact reload_logged "$(journalctl -u edgeota-gateway -o cat | grep -c 'msg="configuration reloaded".*applied=\[log-level\].*need_restart=\[rate-node\]')"
fact active_after_reload "$(systemctl is-active edgeota-gateway)"

# The watchdog, made short: fed while the gateway works; a stopped
# (hung) gateway is killed and started again.
mkdir -p /run/systemd/system/edgeota-gateway.service.d
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\n' >/run/systemd/system/edgeota-gateway.service.d/watchdog.conf
systemctl daemon-reload
systemctl restart edgeota-gateway
sleep 6
fact restarts_while_fed "$(show edgeota-gateway NRestarts)"
pid=$(show edgeota-gateway MainPID)
[ "$pid" -gt 0 ] && kill -STOP "$pid" # never kill 0: this script's own group
for i in $(seq 1 60); do
	[ "$(show edgeota-gateway NRestarts)" -ge 1 ] && break
	sleep 0.5
done
fact restarts_after_hang "$(show edgeota-gateway NRestarts)"
fact hang_logged "$(journalctl -u edgeota-gateway -o cat | grep -c 'Watchdog timeout')"
rm -r /run/systemd/system/edgeota-gateway.service.d
systemctl daemon-reload
systemctl restart edgeota-gateway
edgeota healthcheck $T >/dev/null 2>&1; fact health_after_hang $?

gw=$(show edgeota-gateway MainPID) node=$(show edgeota-node@n1 MainPID)
dpkg -i "$2" >>/root/dpkg.log 2>&1; fact upgrade_rc $?
fact version_after_upgrade "$(edgeota --version)"
fact gateway_restarted "$([ "$(show edgeota-gateway MainPID)" != "$gw" ] && echo yes || echo no)"
fact node_restarted "$([ "$(show edgeota-node@n1 MainPID)" != "$node" ] && echo yes || echo no)"
fact active_after_upgrade "$(systemctl is-active edgeota-gateway edgeota-node@n1 | tr '\n' ' ')"
edgeota healthcheck $T >/dev/null 2>&1; fact health_after_upgrade $?
fact config_kept "$(grep -c '^log-level: debug$' /etc/edgeota/gateway.yaml)"
fact key_kept "$(edgeota gateway keys list $T 2>/dev/null | grep -c '^n1$')"

dpkg -r edgeota >>/root/dpkg.log 2>&1; fact remove_rc $?
fact active_after_remove "$(systemctl is-active edgeota-gateway edgeota-node@n1 | tr '\n' ' ')"
fact state_after_remove "$(test -f /var/lib/edgeota/gateway.db && echo kept || echo gone)"
dpkg -P edgeota >>/root/dpkg.log 2>&1; fact purge_rc $?
fact state_after_purge "$(test -e /var/lib/edgeota && echo kept || echo gone)"
fact wants_after_purge "$(ls /etc/systemd/system/multi-user.target.wants/ | grep -c edgeota)"
echo "--- journal"; journalctl -u edgeota-gateway -u edgeota-node@n1 -o short --no-pager | tail -40
echo "--- dpkg"; cat /root/dpkg.log
`

// underSystemdWant is what the script must see.
var underSystemdWant = map[string]string{
	"install_rc": "0", "enabled_after_install": "disabled", "active_after_install": "inactive",
	"start_rc": "0", "health_after_start": "0", "watchdog_usec": "30s",
	"keys_rc": "0", "node_start_rc": "0", "node_seen": "yes",
	"reload_rc": "0", "reload_logged": "1", "active_after_reload": "active",
	"restarts_while_fed": "0", "restarts_after_hang": "1", "hang_logged": "1", "health_after_hang": "0",
	"upgrade_rc": "0", "version_after_upgrade": "edgeota version 1.0.1", "gateway_restarted": "yes", "node_restarted": "yes",
	"active_after_upgrade": "active active ", "health_after_upgrade": "0", "config_kept": "1", "key_kept": "1",
	"remove_rc": "0", "active_after_remove": "inactive inactive ", "state_after_remove": "kept",
	"purge_rc": "0", "state_after_purge": "gone", "wants_after_purge": "0",
}

// underSystemd boots root with systemd-nspawn and runs the script on the
// packages of dist, then checks its facts.
func underSystemd(t *testing.T, root, dist string) {
	t.Helper()
	cache := filepath.Join(root, "var/cache/edgeota-test") // /tmp is a tmpfs in the booted root
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	var debs []string
	for _, v := range []string{"1.0.0", "1.0.1"} {
		b, err := os.ReadFile(filepath.Join(dist, debName(v, runtime.GOARCH)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, debName(v, runtime.GOARCH)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		debs = append(debs, "/var/cache/edgeota-test/"+debName(v, runtime.GOARCH))
	}
	files := map[string]string{
		"usr/local/bin/edgeota-under-systemd": underSystemdScript,
		"etc/systemd/system/edgeota-under-systemd.service": fmt.Sprintf(`[Unit]
Description=the package test under systemd
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
TimeoutStartSec=240
ExecStart=/usr/local/bin/edgeota-under-systemd %s %s
[Install]
WantedBy=default.target
`, debs[0], debs[1]),
		// The operator's key and a node's settings, put in place before
		// the package is installed, as configuration management would.
		"etc/edgeota/operator.pub": operatorPub(t),
		"etc/edgeota/node-n1.yaml": "class: 6ba7b810-9dad-11d1-80b4-00c04fd430c8\ntrust: [/etc/edgeota/operator.pub]\n" +
			"gateway: coaps://127.0.0.1:5684\npsk-file: /etc/edgeota/node-n1.psk\nlabels: site=test\n",
		"etc/edgeota/node-n1.psk": "hex:000102030405060708090a0b0c0d0e0f\n",
	}
	for name, s := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The PSK file is for the node's user: its group is made by the
	// package, so the file is world-readable here (the test's key only).
	os.Chmod(filepath.Join(root, "etc/edgeota/node-n1.psk"), 0o644)
	command(t, "", nil, time.Minute, "systemctl", "--root="+root, "enable", "edgeota-under-systemd.service")
	command(t, "", nil, time.Minute, "umount", filepath.Join(root, "proc")) // the booted root mounts its own
	start := time.Now()
	// --register=no --keep-unit: no systemd on this side to register with.
	out := command(t, root, nil, 5*time.Minute, "systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
		"--private-network", "--directory="+root, "--boot")
	t.Logf("systemd-nspawn: %v", time.Since(start).Round(time.Second))
	b, err := os.ReadFile(filepath.Join(root, "root/facts"))
	if err != nil {
		t.Fatalf("no facts from the booted root (%v); its console:\n%s", err, lastLines(out, 60))
	}
	facts := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "--- journal" {
			break
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			facts[k] = v
		}
	}
	bad := false
	for k, want := range underSystemdWant {
		if got, ok := facts[k]; !ok || got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
			bad = true
		}
	}
	if bad {
		t.Logf("what the booted root wrote:\n%s", b)
	}
}

// operatorPub makes an operator key pair and returns its public key.
func operatorPub(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	b, err := os.ReadFile(filepath.Join(dir, "op.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
