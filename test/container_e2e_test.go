package test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgeota/gateway/gatewaytest"
	"edgeota/test/testutil"
)

// TestContainerImage builds the gateway's container image as make image
// does (scripts/packaging/build-image: buildah from
// scripts/packaging/Containerfile) into a private containers store, runs
// it with podman and checks it as an operator would: the image runs the
// gateway as uid 65532 with its state on the volume; the HEALTHCHECK
// passes once the gateway serves; the admin API answers on its published
// port to the token the gateway created on the volume, and only to it; a
// node's key imported through it opens a DTLS session on the published
// CoAPS port; podman stop ends the gateway cleanly (SIGTERM, exit 0); and
// a restart on the same volume keeps the token and the key.
//
// It takes a minute or more (the build compiles edgeota), so make test
// (-short) skips it; make image-test runs it. It needs root, buildah,
// podman and, on this machine's hybrid cgroup layout, runc.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the container image (a minute or more): make image-test runs it")
	}
	if os.Getuid() != 0 {
		t.Skip("buildah and podman with chroot isolation and a private store need root")
	}
	requirePeer(t, "buildah", "buildah")
	requirePeer(t, "podman", "podman")
	store := t.TempDir()
	global := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}
	// crun, podman's runtime in Debian, refuses a hybrid cgroup layout
	// (cgroup v1 controllers with a cgroup2 mount beside them): "cgroups in
	// hybrid mode not supported"; runc runs there.
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		requirePeer(t, "runc", "runc")
		global = append(global, "--runtime", "runc")
	}
	pm := &podman{t: t, global: global}
	t.Cleanup(pm.cleanup)

	const image = "localhost/edgeota:e2e"
	build := exec.Command("scripts/packaging/build-image")
	build.Dir = ".."
	build.Env = append(os.Environ(), "IMAGE="+image, "BUILDAH_STORAGE="+strings.Join(global[:6], " "))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/packaging/build-image: %v\n%s", err, out)
	} else {
		t.Logf("build-image:\n%s", lastLines(string(out), 8))
	}

	var inspected []struct {
		Config struct {
			User         string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Entrypoint   []string
		}
		HealthCheck *struct{ Test []string } `json:"Healthcheck"`
		Size        int64
	}
	if err := json.Unmarshal([]byte(pm.run("image", "inspect", image)), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	img := inspected[0]
	_, volumeSet := img.Config.Volumes["/var/lib/edgeota"]
	if img.Config.User != "65532:65532" || !volumeSet || img.HealthCheck == nil || !slices.Contains(img.HealthCheck.Test, "healthcheck") {
		t.Fatalf("image config: user %q, volumes %v, health check %+v", img.Config.User, img.Config.Volumes, img.HealthCheck)
	}
	t.Logf("image: %d bytes, entrypoint %q", img.Size, img.Config.Entrypoint)

	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	if err := os.Chmod(filepath.Join(dir, "op.pub"), 0o644); err != nil { // readable by uid 65532
		t.Fatal(err)
	}
	const name, volume = "edgeota-e2e", "edgeota-e2e-data"
	pm.run("run", "--detach", "--name", name,
		// No CAP_SYS_RESOURCE here: podman's default limits (a million
		// files) would be a raise the runtime may not make.
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
		"--publish", "127.0.0.1::8080/tcp", "--publish", "127.0.0.1::5684/udp",
		"--volume", volume+":/var/lib/edgeota",
		"--volume", filepath.Join(dir, "op.pub")+":/etc/edgeota/operator.pub:ro",
		image)
	pm.waitServing(name, 1)

	// The image's own health check, as podman's timer would run it.
	pm.run("healthcheck", "run", name)
	if st := pm.run("inspect", "--format", "{{.State.Health.Status}}", name); strings.TrimSpace(st) != "healthy" {
		t.Fatalf("health status %q, want healthy", st)
	}
	if top := pm.run("top", name, "user", "args"); !strings.Contains(top, "edgeota ") || strings.Contains(top, "root") {
		t.Fatalf("processes:\n%s", top)
	}

	// The token the gateway made on the volume: the gateway's user's,
	// mode 0600.
	mount := strings.TrimSpace(pm.run("volume", "inspect", "--format", "{{.Mountpoint}}", volume))
	st, err := os.Stat(filepath.Join(mount, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65532 || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: uid %d, mode %v; want 65532, 0600", sys.Uid, st.Mode().Perm())
	}
	token := filepath.Join(dir, "admin.token")
	pm.run("cp", name+":/var/lib/edgeota/admin.token", token)
	first, _ := os.ReadFile(token)

	admin := "http://" + strings.TrimSpace(pm.run("port", name, "8080/tcp"))
	coaps := strings.TrimSpace(pm.run("port", name, "5684/udp"))
	if out := mustRun(t, dir, "healthcheck", "--admin", admin, "--token-file", token); !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("healthcheck from the host: %q", out)
	}
	if _, errs, code := run(t, dir, "healthcheck", "--admin", admin); code != 1 || !strings.Contains(errs, "requires a token") {
		t.Fatalf("healthcheck without the token: exit %d, %s", code, errs)
	}

	// A node's key through the admin API; a DTLS session on the published
	// CoAPS port with it.
	psk := bytes.Repeat([]byte{0x5a}, 16)
	if err := os.WriteFile(filepath.Join(dir, "keys.csv"), []byte("node_id,psk\nnode-c1,hex:"+hex.EncodeToString(psk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "gateway", "keys", "import", "--admin", admin, "--token-file", token, "keys.csv")
	handshake := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		dc, err := gatewaytest.DialDTLS(ctx, "", coaps, "node-c1", psk)
		if err != nil {
			return err
		}
		return dc.Close()
	}
	if err := handshake(); err != nil {
		t.Fatalf("DTLS session on the published CoAPS port %s: %v", coaps, err)
	}

	// podman stop: SIGTERM, the gateway ends by itself with exit 0.
	pm.run("stop", "--time", "60", name)
	if code := strings.TrimSpace(pm.run("inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Fatalf("the gateway ended with exit %s after podman stop", code)
	}

	// Restarted on the same volume: the same token, the key still there.
	pm.run("start", name)
	pm.waitServing(name, 2)
	pm.run("cp", name+":/var/lib/edgeota/admin.token", token)
	if again, _ := os.ReadFile(token); !bytes.Equal(again, first) {
		t.Fatal("the restarted gateway made a new admin token")
	}
	admin = "http://" + strings.TrimSpace(pm.run("port", name, "8080/tcp"))
	if out := mustRun(t, dir, "gateway", "keys", "list", "--admin", admin, "--token-file", token); !strings.Contains(out, "node-c1") {
		t.Fatalf("keys after the restart: %q", out)
	}
}

// podman runs podman commands on the test's private store.
type podman struct {
	t      *testing.T
	global []string
}

// run runs one podman command and returns its standard output; it fails
// the test when the command fails. podman's complaints that it cannot
// reach systemd for the health check's timer (none runs here) are noise.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("podman", append(slices.Clone(p.global), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// waitServing waits until the container's log says, for the n-th time,
// that the gateway serves; it fails the test at once when the container
// stops first.
func (p *podman) waitServing(name string, n int) {
	p.t.Helper()
	testutil.Eventually(p.t, "the gateway in the container to serve", func() bool {
		logs := p.logs(name)
		if strings.Count(logs, `msg="gateway serving"`) >= n {
			return true
		}
		if st := strings.TrimSpace(p.run("inspect", "--format", "{{.State.Status}}", name)); st != "running" {
			p.t.Fatalf("the container is %s:\n%s", st, logs)
		}
		return false
	}, testutil.Every(200*time.Millisecond))
}

func (p *podman) logs(name string) string {
	out, _ := exec.Command("podman", append(slices.Clone(p.global), "logs", name)...).CombinedOutput()
	return string(out)
}

// cleanup removes the test's containers and volumes, printing the
// gateway's log when the test failed; the store itself is in a
// t.TempDir.
func (p *podman) cleanup() {
	if p.t.Failed() {
		p.t.Logf("container log:\n%s", lastLines(p.logs("edgeota-e2e"), 60))
	}
	for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"volume", "prune", "--force"}} {
		exec.Command("podman", append(slices.Clone(p.global), args...)...).Run()
	}
}
