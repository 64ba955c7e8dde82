package main

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/spf13/cobra"
)

// The container image's build files, relative to the repository's top
// directory (the build context).
const (
	containerfile   = "scripts/packaging/Containerfile"
	containerConfig = "scripts/packaging/container-gateway.yaml"
)

// repoRoot is the repository's top directory, from this package's.
const repoRoot = "../.."

// TestContainerfile is the container image's linter, run by make test
// (hadolint is not in Debian; test/container_e2e_test.go builds and runs
// the image where buildah and podman can): the Containerfile parses with
// BuildKit's own parser without a warning of its linter, and
// checkContainerfile finds nothing wrong with it.
func TestContainerfile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, containerfile))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkContainerfile(src, readRepoFile) {
		t.Errorf("%s: %s", containerfile, p)
	}
}

// TestContainerfileRules: each rule of checkContainerfile finds its fault
// in a copy of the Containerfile (or its gateway configuration) with that
// fault put in.
func TestContainerfileRules(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(repoRoot, containerfile))
	if err != nil {
		t.Fatal(err)
	}
	goodConfig, err := readRepoFile(containerConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		old, new  string // replaced once in the Containerfile
		configOld string // replaced once in the configuration, by configNew
		configNew string
		want      string
	}{
		{name: "buildkit lint rule", old: "FROM ${GO_IMAGE} AS build", new: "FROM ${GO_IMAGE} as build", want: "FromAsCasing"},
		{name: "unpinned base", old: "=docker.io/library/golang:1.26-bookworm", new: "=docker.io/library/golang", want: "pin it with a tag"},
		{name: "latest base", old: "=docker.io/library/golang:1.26-bookworm", new: "=docker.io/library/golang:latest", want: "pin it with a tag"},
		{name: "final base from a registry", old: "FROM scratch", new: "FROM debian", want: "pin it with a tag"},
		{name: "ADD of a URL", old: "COPY go.mod go.sum ./", new: "ADD https://example.com/go.mod ./\nCOPY go.sum ./", want: "ADD of a URL"},
		{name: "cgo", old: "CGO_ENABLED=0", new: "CGO_ENABLED=1", want: "CGO_ENABLED=0"},
		{name: "no -trimpath", old: "go build -trimpath", new: "go build", want: "-trimpath"},
		{name: "no user", old: "USER 65532:65532\n", new: "", want: "runs as root"},
		{name: "root user", old: "USER 65532:65532", new: "USER root", want: "runs as root"},
		{name: "user by name", old: "USER 65532:65532", new: "USER edgeota", want: "numeric"},
		{name: "user not in passwd", old: "USER 65532:65532", new: "USER 65533:65533", want: "no /etc/passwd entry"},
		{name: "no volume", old: `VOLUME ["/var/lib/edgeota"]`, new: "", want: "no VOLUME"},
		{name: "volume elsewhere", old: `VOLUME ["/var/lib/edgeota"]`, new: `VOLUME ["/data"]`, want: "no VOLUME"},
		{name: "port not exposed", old: "EXPOSE 5684/udp 5683/udp 8080/tcp", new: "EXPOSE 5684/udp 8080/tcp", want: "5683/udp not exposed"},
		{name: "no healthcheck", old: "HEALTHCHECK --interval", new: "#", want: "no HEALTHCHECK"},
		{name: "healthcheck unknown flag", old: `"--timeout", "5s"`, new: `"--deadline", "5s"`, want: "unknown flag: --deadline"},
		{name: "healthcheck another command", old: `"/usr/bin/edgeota", "healthcheck"`, new: `"/usr/bin/edgeota", "nodes"`, want: "not edgeota healthcheck"},
		{name: "healthcheck another token", old: `"--token-file", "/var/lib/edgeota/admin.token"`, new: `"--token-file", "/run/token"`, want: "the gateway's admin-token-file"},
		{name: "healthcheck another port", old: `"http://127.0.0.1:8080"`, new: `"http://127.0.0.1:9090"`, want: "the gateway's admin port"},
		{name: "healthcheck without arguments", old: `CMD ["/usr/bin/edgeota", "healthcheck", "--admin", "http://127.0.0.1:8080", "--token-file", "/var/lib/edgeota/admin.token", "--timeout", "5s"]`, new: `CMD ["/usr/bin/edgeota"]`, want: "want the binary and its arguments"},
		{name: "entrypoint without arguments", old: `ENTRYPOINT ["/usr/bin/edgeota", "gateway", "--config", "/etc/edgeota/gateway.yaml"]`, new: `ENTRYPOINT []`, want: "want the binary and its arguments"},
		{name: "healthcheck shell form", old: `CMD ["/usr/bin/edgeota", "healthcheck"`, new: `CMD /usr/bin/edgeota healthcheck # ["x"`, want: "exec form"},
		{name: "entrypoint shell form", old: `ENTRYPOINT ["/usr/bin/edgeota", "gateway", "--config", "/etc/edgeota/gateway.yaml"]`, new: `ENTRYPOINT /usr/bin/edgeota gateway --config /etc/edgeota/gateway.yaml`, want: "exec form"},
		{name: "entrypoint not the gateway", old: `ENTRYPOINT ["/usr/bin/edgeota", "gateway"`, new: `ENTRYPOINT ["/usr/bin/edgeota", "node"`, want: "not edgeota gateway"},
		{name: "config not copied", old: "/rootfs/etc/edgeota/gateway.yaml", new: "/rootfs/etc/edgeota/gw.yaml", want: "no COPY of " + containerConfig},
		{name: "config unknown key", configOld: "coaps:", configNew: "coap-s:", want: `unknown key "coap-s"`},
		{name: "config data off the volume", configOld: "data: /var/lib/edgeota", configNew: "data: /srv/edgeota", want: "no VOLUME for the gateway's data directory /srv/edgeota"},
		{name: "config token off the volume", configOld: "admin-token-file: /var/lib/edgeota/admin.token", configNew: "admin-token-file: /etc/edgeota/admin.token", want: "not on a VOLUME"},
		{name: "config admin on loopback", configOld: `admin: ":8080"`, configNew: `admin: "127.0.0.1:8080"`, want: "unreachable from outside"},
		{name: "config without token", configOld: "admin-token-file: /var/lib/edgeota/admin.token\n", configNew: "", want: "admin-token-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := good
			if tt.old != "" {
				if !bytes.Contains(good, []byte(tt.old)) {
					t.Fatalf("the Containerfile has no %q to replace", tt.old)
				}
				src = bytes.Replace(good, []byte(tt.old), []byte(tt.new), 1)
			}
			config := goodConfig
			if tt.configOld != "" {
				if !bytes.Contains(goodConfig, []byte(tt.configOld)) {
					t.Fatalf("the configuration has no %q to replace", tt.configOld)
				}
				config = bytes.Replace(goodConfig, []byte(tt.configOld), []byte(tt.configNew), 1)
			}
			read := func(name string) ([]byte, error) {
				if name == containerConfig {
					return config, nil
				}
				return readRepoFile(name)
			}
			problems := checkContainerfile(src, read)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("no problem says %q; found:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// readRepoFile reads a file of the build context.
func readRepoFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(name)))
}

// checkContainerfile lists what is wrong with the image that Containerfile
// src builds, reading the files it copies from the build context with read:
//   - BuildKit's parser and linter warn about nothing;
//   - every base image is scratch, an earlier stage, or pinned by a tag
//     other than latest or by a digest (ARG defaults expanded); no ADD
//     fetches a URL;
//   - the build stage builds with CGO_ENABLED=0 and -trimpath;
//   - the final stage runs as a numeric non-root user that the image's
//     /etc/passwd names, declares a VOLUME, EXPOSEs CoAP, CoAPS and the
//     admin API;
//   - its ENTRYPOINT (exec form) is an 'edgeota gateway' command line this
//     binary accepts, whose --config file is copied from containerConfig,
//     which the gateway applies without error, keeping data and the admin
//     token on the VOLUME and the admin API reachable from outside with a
//     token, on the EXPOSEd ports;
//   - its HEALTHCHECK (exec form) is an 'edgeota healthcheck' command line
//     this binary accepts, asking the gateway's admin port on loopback with
//     the gateway's token file.
func checkContainerfile(src []byte, read func(name string) ([]byte, error)) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return []string{err.Error()}
	}
	for _, w := range res.Warnings {
		bad("parser: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		bad("line %d: %s: %s (%s)", line(loc), rule, msg, url)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return append(problems, err.Error())
	}
	if len(stages) < 2 {
		return append(problems, "want a build stage and a final stage")
	}
	defaults := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				defaults[kv.Key] = *kv.Value
			}
		}
	}

	// Base images and sources.
	var named []string
	var passwd string
	for _, st := range stages {
		base := os.Expand(st.BaseName, func(k string) string { return defaults[k] })
		if base != "scratch" && !slices.Contains(named, base) && !pinned(base) {
			bad("line %d: base image %q: pin it with a tag other than latest, or a digest", line(st.Location), base)
		}
		named = append(named, st.Name)
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.AddCommand:
				for _, s := range c.SourcePaths {
					if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
						bad("line %d: ADD of a URL (%s): fetch in a RUN that checks a digest, or COPY", line(c.Location()), s)
					}
				}
			case *instructions.RunCommand:
				if run := strings.Join(c.CmdLine, " "); strings.Contains(run, "/etc/passwd") {
					passwd += run
				}
			}
		}
	}

	build, final := stages[0], stages[len(stages)-1]
	var env, runs string
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env += " " + kv.Key + "=" + kv.Value
			}
		case *instructions.RunCommand:
			runs += " " + strings.Join(c.CmdLine, " ")
		}
	}
	if !strings.Contains(env+runs, "CGO_ENABLED=0") {
		bad("the build stage does not set CGO_ENABLED=0: the binary must be static for an empty base")
	}
	if !strings.Contains(runs, "go build -trimpath") {
		bad("the build stage does not build with go build -trimpath")
	}

	// The final stage.
	var user string
	var volumes, exposed []string
	var health *instructions.HealthCheckCommand
	var entry *instructions.EntrypointCommand
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.EntrypointCommand:
			entry = c
		}
	}
	uid, gid, _ := strings.Cut(user, ":")
	switch {
	case user == "" || uid == "0" || uid == "root":
		bad("the final stage runs as root: give it a USER")
	case !numeric(uid) || gid != "" && !numeric(gid):
		bad("USER %s: make it numeric (uid:gid), so that a runtime can tell it is not root", user)
	case !strings.Contains(passwd, ":"+uid+":"):
		bad("USER %s: the image has no /etc/passwd entry for uid %s", user, uid)
	}
	for _, p := range []string{"5683/udp", "5684/udp", "8080/tcp"} {
		if !slices.Contains(exposed, p) {
			bad("port %s not exposed", p)
		}
	}
	onVolume := func(key, p string) {
		for _, v := range volumes {
			if p == v || strings.HasPrefix(p, strings.TrimSuffix(v, "/")+"/") {
				return
			}
		}
		bad("the gateway's %s %s is not on a VOLUME (%v)", key, p, volumes)
	}
	if len(volumes) == 0 {
		bad("no VOLUME for the gateway's data directory")
	}

	// The gateway the ENTRYPOINT runs, with the configuration it reads.
	var gw *cobra.Command
	switch {
	case entry == nil:
		bad("no ENTRYPOINT")
	case entry.PrependShell:
		bad("ENTRYPOINT: use the exec form ([\"/usr/bin/edgeota\", ...]): there is no shell in the image")
	case len(entry.CmdLine) < 2:
		bad("ENTRYPOINT %q: want the binary and its arguments", entry.CmdLine)
	default:
		gw, err = commandLine(entry.CmdLine[1:])
		switch {
		case gw == nil || gw.CommandPath() != "edgeota gateway":
			bad("ENTRYPOINT %q is not edgeota gateway", entry.CmdLine)
			gw = nil
		case err != nil:
			bad("ENTRYPOINT %q: %v", entry.CmdLine, err)
			gw = nil
		}
	}
	cfg := map[string]string{}
	if gw != nil {
		cfg = gatewayConfig(gw, stages, read, bad)
		if !slices.Contains(volumes, cfg["data"]) {
			bad("no VOLUME for the gateway's data directory %s (%v)", cfg["data"], volumes)
		}
		onVolume("admin-token-file", cfg["admin-token-file"])
		if cfg["admin-token-file"] == "" {
			bad("the gateway has no admin-token-file: beyond loopback it refuses to start without one")
		}
		if host, _, err := net.SplitHostPort(cfg["admin"]); err != nil || host == "127.0.0.1" || host == "localhost" || host == "::1" {
			bad("the gateway's admin %q is unreachable from outside the container: listen on :PORT", cfg["admin"])
		}
		for _, key := range []string{"coaps", "admin"} {
			_, port, _ := net.SplitHostPort(cfg[key])
			proto := map[string]string{"coaps": "udp", "admin": "tcp"}[key]
			if !slices.Contains(exposed, port+"/"+proto) {
				bad("the gateway's %s %s: port %s/%s not exposed", key, cfg[key], port, proto)
			}
		}
	}

	// The health check.
	switch {
	case health == nil || health.Health == nil || len(health.Health.Test) == 0 || health.Health.Test[0] == "NONE":
		bad("no HEALTHCHECK")
	case health.Health.Test[0] != "CMD":
		bad("HEALTHCHECK %q: use the exec form (CMD [\"/usr/bin/edgeota\", ...]): there is no shell in the image", health.Health.Test)
	case len(health.Health.Test) < 3:
		bad("HEALTHCHECK %q: want the binary and its arguments", health.Health.Test)
	case entry != nil && len(entry.CmdLine) > 0 && health.Health.Test[1] != entry.CmdLine[0]:
		bad("HEALTHCHECK runs %s, the ENTRYPOINT %s", health.Health.Test[1], entry.CmdLine[0])
	default:
		hc, err := commandLine(health.Health.Test[2:])
		switch {
		case hc == nil || hc.CommandPath() != "edgeota healthcheck":
			bad("HEALTHCHECK %q is not edgeota healthcheck", health.Health.Test[1:])
		case err != nil:
			bad("HEALTHCHECK %q: %v", health.Health.Test[1:], err)
		case gw != nil:
			flag := func(name string) string { return hc.Flags().Lookup(name).Value.String() }
			if tok := flag("token-file"); tok != cfg["admin-token-file"] {
				bad("HEALTHCHECK --token-file %q is not the gateway's admin-token-file %q", tok, cfg["admin-token-file"])
			}
			u, err := url.Parse(flag("admin"))
			_, port, _ := net.SplitHostPort(cfg["admin"])
			if err != nil || u.Hostname() != "127.0.0.1" || u.Port() != port {
				bad("HEALTHCHECK --admin %q: want the gateway's admin port %s on 127.0.0.1", flag("admin"), port)
			}
		}
	}
	return problems
}

// gatewayConfig finds the --config file of the gateway command line gw,
// the COPY that puts it in the image, and applies it to gw, returning the
// flag values that follow.
func gatewayConfig(gw *cobra.Command, stages []instructions.Stage, read func(string) ([]byte, error), bad func(string, ...any)) map[string]string {
	file := gw.Flags().Lookup("config").Value.String()
	if file == "" {
		bad("the ENTRYPOINT's gateway has no --config")
		return map[string]string{}
	}
	var copied bool
	for _, st := range stages {
		for _, c := range st.Commands {
			if c, ok := c.(*instructions.CopyCommand); ok && slices.Contains(c.SourcePaths, containerConfig) &&
				(c.DestPath == file || strings.HasSuffix(c.DestPath, file)) {
				copied = true
			}
		}
	}
	if !copied {
		bad("no COPY of %s to the gateway's --config %s", containerConfig, file)
		return map[string]string{}
	}
	b, err := read(containerConfig)
	if err == nil {
		// applyConfigFile reads a file: this one, through a temporary copy.
		var dir string
		if dir, err = os.MkdirTemp("", "containerfile"); err == nil {
			defer os.RemoveAll(dir)
			tmp := filepath.Join(dir, path.Base(containerConfig))
			if err = os.WriteFile(tmp, b, 0o600); err == nil {
				err = applyConfigFile(gw, tmp)
			}
		}
	}
	if err != nil {
		bad("%s: %v", containerConfig, err)
	}
	cfg := map[string]string{}
	for _, key := range []string{"data", "admin", "admin-token-file", "coaps"} {
		cfg[key] = gw.Flags().Lookup(key).Value.String()
	}
	return cfg
}

// commandLine parses args (after the binary's name) as this binary's
// command line, flags included, without running it. With an error in the
// flags or arguments it still returns the command they are for.
func commandLine(args []string) (*cobra.Command, error) {
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return nil, err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return cmd, err
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
			return cmd, err
		}
	}
	return cmd, nil
}

// pinned tells whether an image reference names a tag other than latest,
// or a digest.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "" && tag != "latest"
}

func numeric(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}
