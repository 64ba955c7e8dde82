package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The packages of make package (scripts/packaging), checked with the tools
// a distribution checks its own with: their contents, lintian,
// systemd-analyze verify and security on the installed units, and dpkg
// installing, upgrading, removing and purging the .deb in a throwaway
// Debian root.
//
// The root is made by debootstrap (--variant=minbase, with systemd and
// procps: the units' dependencies for systemd-analyze, and sysusers and
// tmpfiles for the postinst) from the Debian mirror each run: about 35 s
// and 240 MB here, and nothing cached between runs that could go stale or
// mask a change of the mirror. dpkg runs in it through chroot, with /proc
// mounted, as on a machine; the maintainer scripts see no running systemd
// (/run/systemd/system is absent), which is the case they must handle in
// image builds, and which skips only their systemctl calls.

// maxExposure is the highest systemd-analyze security exposure a unit may
// have: its "Overall exposure level" (0 to 10, lower is safer; up to 3.9 is
// "OK"). Both units measure 1.1 (docs/operations.md); losing a setting of
// weight, such as PrivateUsers or the system call filter, fails the test.
const maxExposure = 1.5

// packageTools are the commands these tests run, with the Debian package
// of each (scripts/ensure-system-packages installs them).
var packageTools = map[string]string{
	"dpkg-deb": "dpkg", "lintian": "lintian", "debootstrap": "debootstrap", "rpm": "rpm",
	"systemd-analyze": "systemd", "man": "man-db", "chroot": "coreutils", "mount": "mount",
	"systemd-nspawn": "systemd-container",
}

// requirePackageTools fails the test under CI (CI=true) when a tool or
// root is missing, and skips it elsewhere.
func requirePackageTools(t *testing.T) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+"; make test installs the tools and CI runs as root", args...)
		}
		t.Skipf(format, args...)
	}
	for tool, pkg := range packageTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s not found (Debian package %s)", tool, pkg)
		}
	}
	if os.Geteuid() != 0 {
		missing("the package tests need root (chroot, mount, dpkg in a Debian root)")
	}
}

// command runs name with args (in dir when not "", with env added), and
// returns its combined output; an error fails the test with that output.
// timeout bounds it.
func command(t *testing.T, dir string, env []string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// repoRoot is the repository (the parent of test/).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// buildPackages runs make package's script for version and arches into
// dist.
func buildPackages(t *testing.T, dist, version, arches string) {
	t.Helper()
	command(t, repoRoot(t), []string{"DIST=" + dist, "VERSION=" + version, "ARCHES=" + arches}, 10*time.Minute,
		"scripts/packaging/build")
}

// debName and rpmName are the file names nfpm gives the packages.
func debName(version, arch string) string { return fmt.Sprintf("edgeota_%s-1_%s.deb", version, arch) }

func rpmName(version, arch string) string {
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
	return fmt.Sprintf("edgeota-%s-1.%s.rpm", version, rpmArch)
}

// TestPackage builds the packages of one version for amd64 and arm64 (and
// a later one for this machine), checks them, and installs, upgrades,
// removes and purges the .deb in a Debian root.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages and a Debian root (minutes): make packaging runs it")
	}
	requirePackageTools(t)
	dist := t.TempDir()
	buildPackages(t, dist, "1.0.0", "amd64 arm64")
	buildPackages(t, dist, "1.0.1", runtime.GOARCH)
	for _, arch := range []string{"amd64", "arm64"} {
		for _, name := range []string{debName("1.0.0", arch), rpmName("1.0.0", arch)} {
			st, err := os.Stat(filepath.Join(dist, name))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes", name, st.Size())
		}
	}

	t.Run("deb contents", func(t *testing.T) {
		for _, arch := range []string{"amd64", "arm64"} {
			deb := filepath.Join(dist, debName("1.0.0", arch))
			listing := command(t, "", nil, time.Minute, "dpkg-deb", "--contents", deb)
			for _, want := range packagedFiles("/usr/share/zsh/vendor-completions/_edgeota") {
				if !strings.Contains(listing, " ."+want+"\n") {
					t.Errorf("%s lacks %s", filepath.Base(deb), want)
				}
			}
			if conf := command(t, "", nil, time.Minute, "dpkg-deb", "--info", deb, "conffiles"); strings.TrimSpace(conf) != "/etc/edgeota/gateway.yaml" {
				t.Errorf("%s conffiles %q, want /etc/edgeota/gateway.yaml", filepath.Base(deb), conf)
			}
			if a := strings.TrimSpace(command(t, "", nil, time.Minute, "dpkg-deb", "--field", deb, "Architecture")); a != arch {
				t.Errorf("%s: Architecture %s", filepath.Base(deb), a)
			}
			// The binary is built for its architecture and is static.
			dir := t.TempDir()
			command(t, "", nil, time.Minute, "dpkg-deb", "-x", deb, dir)
			checkELF(t, filepath.Join(dir, "usr/bin/edgeota"), arch)
		}
	})

	t.Run("rpm contents", func(t *testing.T) {
		for _, arch := range []string{"amd64", "arm64"} {
			rpm := filepath.Join(dist, rpmName("1.0.0", arch))
			listing := command(t, "", nil, time.Minute, "rpm", "-qpl", rpm) + "\n"
			for _, want := range packagedFiles("/usr/share/zsh/site-functions/_edgeota") {
				if want == "/usr/share/lintian/overrides/edgeota" {
					continue
				}
				if !strings.Contains(listing, want+"\n") {
					t.Errorf("%s lacks %s", filepath.Base(rpm), want)
				}
			}
			// %config(noreplace): rpm's flags "cn" (config, noreplace).
			flags := command(t, "", nil, time.Minute, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm)
			if !strings.Contains(flags, "cn /etc/edgeota/gateway.yaml\n") {
				t.Errorf("%s: /etc/edgeota/gateway.yaml is not %%config(noreplace):\n%s", filepath.Base(rpm), flags)
			}
			scripts := command(t, "", nil, time.Minute, "rpm", "-qp", "--scripts", rpm)
			for _, want := range []string{"postinstall scriptlet", "systemd-sysusers edgeota.conf", "preuninstall scriptlet", "postuninstall scriptlet", "try-restart"} {
				if !strings.Contains(scripts, want) {
					t.Errorf("%s scripts lack %q", filepath.Base(rpm), want)
				}
			}
		}
	})

	t.Run("lintian", func(t *testing.T) {
		// Errors and warnings fail; scripts/packaging/lintian-overrides
		// explains each overridden one. --fail-on also fails on an
		// override that no longer matches.
		out := command(t, "", nil, 5*time.Minute, "lintian", "--allow-root", "--fail-on", "error,warning",
			filepath.Join(dist, debName("1.0.0", "amd64")), filepath.Join(dist, debName("1.0.0", "arm64")))
		if strings.TrimSpace(out) != "" {
			t.Logf("lintian:\n%s", out)
		}
	})

	root := debianRoot(t)
	// The Debian root is for this machine's architecture.
	deb := func(version string) string {
		t.Helper()
		dst := filepath.Join(root, "tmp", debName(version, runtime.GOARCH))
		if _, err := os.Stat(dst); err != nil {
			b, err := os.ReadFile(filepath.Join(dist, debName(version, runtime.GOARCH)))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return "/tmp/" + filepath.Base(dst)
	}
	inRoot := func(args ...string) string {
		t.Helper()
		return command(t, "", []string{"DEBIAN_FRONTEND=noninteractive", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, 5*time.Minute,
			"chroot", append([]string{root}, args...)...)
	}
	path := func(p string) string { return filepath.Join(root, p) }

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install", func(t *testing.T) {
			inRoot("dpkg", "-i", deb("1.0.0"))
			if v := inRoot("edgeota", "--version"); !strings.Contains(v, "edgeota version 1.0.0") {
				t.Errorf("edgeota --version: %q", v)
			}
			for _, f := range packagedFiles("/usr/share/zsh/vendor-completions/_edgeota") {
				if _, err := os.Stat(path(f)); err != nil {
					t.Errorf("installed: %v", err)
				}
			}
			checkUser(t, inRoot)
			checkStateDir(t, path("/var/lib/edgeota"), inRoot)
		}},
		{"systemd-analyze verify", func(t *testing.T) {
			// verify checks the units' syntax, their dependencies, that
			// ExecStart's binary exists in the root, and that the man pages
			// of Documentation= open (man, looking in the root's pages).
			command(t, "", []string{"MANPATH=" + path("/usr/share/man")}, 2*time.Minute,
				"systemd-analyze", "verify", "--root="+root, "edgeota-gateway.service", "edgeota-node@test.service")
		}},
		{"systemd-analyze security", func(t *testing.T) {
			for _, unit := range []string{"edgeota-gateway.service", "edgeota-node@test.service"} {
				got := exposure(t, command(t, "", nil, 2*time.Minute,
					"systemd-analyze", "security", "--offline=yes", "--root="+root, "--no-pager", unit))
				t.Logf("%s: overall exposure %.1f", unit, got)
				if got > maxExposure {
					t.Errorf("%s: exposure %.1f, above %.1f", unit, got, maxExposure)
				}
			}
		}},
		{"operator's state and edit", func(t *testing.T) {
			// The gateway's database, written as the service's user, and an
			// edit of the configuration file.
			if err := os.WriteFile(path("/tmp/nodes.csv"), []byte("node_id,psk\nnode-1,hex:000102030405060708090a0b0c0d0e0f\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			inRoot("setpriv", "--reuid=edgeota", "--regid=edgeota", "--init-groups",
				"edgeota", "gateway", "keys", "import", "--data", "/var/lib/edgeota", "/tmp/nodes.csv")
			editConfig(t, path("/etc/edgeota/gateway.yaml"))
		}},
		{"upgrade", func(t *testing.T) {
			db, conf := sha(t, path("/var/lib/edgeota/gateway.db")), sha(t, path("/etc/edgeota/gateway.yaml"))
			uid := inRoot("id", "-u", "edgeota")
			inRoot("dpkg", "-i", deb("1.0.1"))
			if v := inRoot("edgeota", "--version"); !strings.Contains(v, "edgeota version 1.0.1") {
				t.Errorf("after the upgrade, edgeota --version: %q", v)
			}
			if sha(t, path("/etc/edgeota/gateway.yaml")) != conf {
				t.Error("the upgrade changed the operator's /etc/edgeota/gateway.yaml")
			}
			if sha(t, path("/var/lib/edgeota/gateway.db")) != db {
				t.Error("the upgrade changed the gateway's database")
			}
			if got := inRoot("id", "-u", "edgeota"); got != uid {
				t.Errorf("the user's uid went from %s to %s", uid, got)
			}
			checkStateDir(t, path("/var/lib/edgeota"), inRoot)
		}},
		{"upgrade with a new default configuration", func(t *testing.T) {
			// A version whose /etc/edgeota/gateway.yaml differs: dpkg keeps
			// the operator's (as an unattended upgrade does with
			// --force-confold) and puts the new one beside it.
			conf := sha(t, path("/etc/edgeota/gateway.yaml"))
			newer := repackWithConfig(t, filepath.Join(dist, debName("1.0.1", runtime.GOARCH)), "1.0.2", root)
			inRoot("dpkg", "--force-confdef", "--force-confold", "-i", newer)
			if sha(t, path("/etc/edgeota/gateway.yaml")) != conf {
				t.Error("the upgrade replaced the operator's /etc/edgeota/gateway.yaml")
			}
			dist, err := os.ReadFile(path("/etc/edgeota/gateway.yaml.dpkg-dist"))
			if err != nil || !strings.Contains(string(dist), "# version 1.0.2") {
				t.Errorf("the new default beside it: %v %q", err, dist)
			}
		}},
		{"remove", func(t *testing.T) {
			db, conf := sha(t, path("/var/lib/edgeota/gateway.db")), sha(t, path("/etc/edgeota/gateway.yaml"))
			inRoot("dpkg", "-r", "edgeota")
			for _, gone := range []string{"/usr/bin/edgeota", "/usr/lib/systemd/system/edgeota-gateway.service"} {
				if _, err := os.Stat(path(gone)); !os.IsNotExist(err) {
					t.Errorf("%s after remove: %v", gone, err)
				}
			}
			if sha(t, path("/etc/edgeota/gateway.yaml")) != conf || sha(t, path("/var/lib/edgeota/gateway.db")) != db {
				t.Error("remove changed the configuration or the state")
			}
			if st := inRoot("dpkg-query", "-W", "-f", "${Status}", "edgeota"); st != "deinstall ok config-files" {
				t.Errorf("status after remove %q, want deinstall ok config-files", st)
			}
			checkUser(t, inRoot)
		}},
		{"purge", func(t *testing.T) {
			inRoot("dpkg", "-P", "edgeota")
			for _, gone := range []string{"/var/lib/edgeota", "/etc/edgeota/gateway.yaml"} {
				if _, err := os.Stat(path(gone)); !os.IsNotExist(err) {
					t.Errorf("%s after purge: %v", gone, err)
				}
			}
			checkUser(t, inRoot) // Debian leaves system users in place
		}},
		{"install without systemd's sysusers and tmpfiles", func(t *testing.T) {
			// On a system without them the postinst makes the user with
			// useradd and the directory with install.
			for _, tool := range []string{"/usr/bin/systemd-sysusers", "/usr/bin/systemd-tmpfiles"} {
				inRoot("dpkg-divert", "--local", "--rename", "--divert", tool+".hidden", "--add", tool)
			}
			inRoot("userdel", "edgeota")
			inRoot("dpkg", "-i", deb("1.0.1"))
			checkUser(t, inRoot)
			checkStateDir(t, path("/var/lib/edgeota"), inRoot)
			inRoot("dpkg", "-P", "edgeota")
			if _, err := os.Stat(path("/var/lib/edgeota")); !os.IsNotExist(err) {
				t.Errorf("/var/lib/edgeota after purge: %v", err)
			}
			for _, tool := range []string{"/usr/bin/systemd-sysusers", "/usr/bin/systemd-tmpfiles"} {
				inRoot("dpkg-divert", "--local", "--rename", "--remove", tool)
			}
		}},
		{"under systemd", func(t *testing.T) { underSystemd(t, root, dist) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return // each step builds on the ones before
		}
	}
}

// packagedFiles are paths every package holds; zsh is where its zsh
// completion goes (distributions differ).
func packagedFiles(zsh string) []string {
	return []string{
		"/usr/bin/edgeota",
		"/usr/lib/systemd/system/edgeota-gateway.service",
		"/usr/lib/systemd/system/edgeota-node@.service",
		"/usr/lib/sysusers.d/edgeota.conf",
		"/usr/lib/tmpfiles.d/edgeota.conf",
		"/etc/edgeota/gateway.yaml",
		"/usr/share/man/man1/edgeota.1.gz",
		"/usr/share/man/man1/edgeota-gateway.1.gz",
		"/usr/share/man/man1/edgeota-node.1.gz",
		"/usr/share/bash-completion/completions/edgeota",
		"/usr/share/fish/vendor_completions.d/edgeota.fish",
		zsh,
		"/usr/share/doc/edgeota/copyright",
		"/usr/share/doc/edgeota/operations.md.gz",
		"/usr/share/doc/edgeota/examples/node.yaml",
		"/usr/share/lintian/overrides/edgeota",
	}
}

// checkELF checks that the file is an ELF executable for arch with no
// program interpreter: statically linked.
func checkELF(t *testing.T, name, arch string) {
	t.Helper()
	f, err := elf.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != want {
		t.Errorf("%s binary for %v, want %v", arch, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s binary is dynamically linked", arch)
		}
	}
}

// debianRoot makes a throwaway Debian root with debootstrap, of this
// machine's Debian release (bookworm elsewhere), from
// EDGEOTA_DEBIAN_MIRROR or Debian's mirror, with /proc mounted until the
// test ends.
func debianRoot(t *testing.T) string {
	t.Helper()
	suite, mirror := "bookworm", "http://deb.debian.org/debian"
	if b, err := os.ReadFile("/etc/os-release"); err == nil && strings.Contains(string(b), "\nID=debian\n") {
		if m := regexp.MustCompile(`(?m)^VERSION_CODENAME=(\w+)$`).FindStringSubmatch(string(b)); m != nil {
			suite = m[1]
		}
	}
	if m := os.Getenv("EDGEOTA_DEBIAN_MIRROR"); m != "" {
		mirror = m
	}
	root := t.TempDir()
	start := time.Now()
	command(t, "", nil, 10*time.Minute, "debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus,procps", suite, root, mirror)
	t.Logf("debootstrap %s from %s: %v", suite, mirror, time.Since(start).Round(time.Second))
	command(t, "", nil, time.Minute, "mount", "-t", "proc", "proc", filepath.Join(root, "proc"))
	t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(root, "proc")).Run() }) // before TempDir's removal
	return root
}

// checkUser checks the edgeota system user: a system uid, its home the
// state directory, no login shell.
func checkUser(t *testing.T, inRoot func(...string) string) {
	t.Helper()
	f := strings.Split(strings.TrimSpace(inRoot("getent", "passwd", "edgeota")), ":")
	if len(f) != 7 {
		t.Fatalf("getent passwd edgeota: %q", f)
	}
	uid, _ := strconv.Atoi(f[2])
	if uid == 0 || uid >= 1000 || f[5] != "/var/lib/edgeota" || !strings.HasSuffix(f[6], "/nologin") {
		t.Errorf("user edgeota %q: want a system uid, home /var/lib/edgeota, shell nologin", f)
	}
	inRoot("getent", "group", "edgeota")
}

// checkStateDir checks /var/lib/edgeota: a directory of the edgeota user,
// mode 0700.
func checkStateDir(t *testing.T, dir string, inRoot func(...string) string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := strings.TrimSpace(inRoot("stat", "-c", "%U:%G", "/var/lib/edgeota"))
	if !st.IsDir() || st.Mode().Perm() != 0o700 || owner != "edgeota:edgeota" {
		t.Errorf("/var/lib/edgeota: %v %s, want a directory 0700 edgeota:edgeota", st.Mode(), owner)
	}
}

// editConfig makes an operator's edit of the gateway's configuration:
// another log level and a comment.
func editConfig(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "log-level: info", "log-level: debug # the operator's edit", 1)
	if edited == string(b) {
		t.Fatal("no log-level: info line in the packaged gateway.yaml")
	}
	if err := os.WriteFile(name, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
}

// repackWithConfig makes, from the package deb, a package of version
// whose gateway.yaml says so in a comment, in root's /tmp.
func repackWithConfig(t *testing.T, deb, version, root string) string {
	t.Helper()
	dir := t.TempDir()
	command(t, "", nil, time.Minute, "dpkg-deb", "-R", deb, dir)
	conf := filepath.Join(dir, "etc/edgeota/gateway.yaml")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	b = append([]byte("# version "+version+"\n"), b...)
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(dir, "DEBIAN/control")
	c, err := os.ReadFile(control)
	if err != nil {
		t.Fatal(err)
	}
	c = regexp.MustCompile(`(?m)^Version: .*$`).ReplaceAll(c, []byte("Version: "+version+"-1"))
	if err := os.WriteFile(control, c, 0o644); err != nil {
		t.Fatal(err)
	}
	// md5sums lists the new file's sum.
	sums := filepath.Join(dir, "DEBIAN/md5sums")
	s, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(s)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, "  etc/edgeota/gateway.yaml") {
			line = md5hex(t, conf) + "  etc/edgeota/gateway.yaml"
		}
		out.WriteString(line + "\n")
	}
	if err := os.WriteFile(sums, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("edgeota_%s-1_%s.deb", version, runtime.GOARCH)
	command(t, "", nil, time.Minute, "dpkg-deb", "--root-owner-group", "-b", dir, filepath.Join(root, "tmp", name))
	return "/tmp/" + name
}

func md5hex(t *testing.T, name string) string {
	t.Helper()
	out := command(t, "", nil, time.Minute, "md5sum", name)
	return strings.Fields(out)[0]
}

// sha is the SHA-256 of a file, in hex.
func sha(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// exposure parses systemd-analyze security's "Overall exposure level for
// UNIT: N.N LABEL" line.
func exposure(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\w+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
