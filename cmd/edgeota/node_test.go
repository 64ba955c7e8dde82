package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"edgeota/nodeagent"
)

// TestNodeRuntime: --runtime is the runtime the node offers to a
// manifest's requires: a manifest signed with --requires-runtime tflm is
// refused (reason requires) by a node started without it or with another
// runtime, and installed by a node started with --runtime tflm. A runtime
// that is not a section 0 name is a usage error.
func TestNodeRuntime(t *testing.T) {
	f := newFixture(t)
	manifest := filepath.Join(f.dir, "tflm.cose")
	mustCLI(t, "sign", "--key", f.key, "--image", f.image, "--component", "kws-model", "--version", "1.4.0",
		"--seq", "42", "--class", testClass, "--probation-seconds", "1", "--min-inferences", "1",
		"--requires-runtime", "tflm", "--out", manifest)
	apply := func(flash string, extra ...string) (string, int) {
		args := append([]string{"node", "apply", "--flash", filepath.Join(f.dir, flash), "--class", testClass,
			"--trust", f.pub, "--manifest", manifest, "--image", f.image}, extra...)
		_, errs, code := cli(t, args...)
		return errs, code
	}
	for _, tt := range []struct {
		name, flash string
		flags       []string
		refused     bool
	}{
		{"no runtime", "none.flash", nil, true},
		{"another runtime", "onnx.flash", []string{"--runtime", "onnx"}, true},
		{"the runtime required", "tflm.flash", []string{"--runtime", "tflm"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs, code := apply(tt.flash, tt.flags...)
			if tt.refused {
				if code == 0 || !strings.Contains(errs, `requires runtime "tflm"`) {
					t.Fatalf("exit %d, stderr %q; want a refusal naming the runtime", code, errs)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
		})
	}
	if errs, code := apply("bad.flash", "--runtime", "tf lm"); code != 2 || !strings.Contains(errs, "--runtime") {
		t.Fatalf("--runtime \"tf lm\": exit %d, stderr %q; want a usage error", code, errs)
	}
}

// TestNodeDeltaFlag: edgeota node applies deltas by default and
// --delta=false turns them off (nodeagent.Config.DisableDeltas); a node
// command without the flag (node apply) keeps them on.
func TestNodeDeltaFlag(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name, cmd string
		args      []string
		disabled  bool
	}{
		{"default", "node", nil, false},
		{"off", "node", []string{"--delta=false"}, true},
		{"on", "node", []string{"--delta=true"}, false},
		{"apply", "apply", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var n nodeFlags
			c := &cobra.Command{Use: tt.cmd}
			n.register(c)
			args := append([]string{"--class", testClass, "--trust", f.pub, "--flash", filepath.Join(t.TempDir(), "flash"),
				"--slot-size", "65536"}, tt.args...)
			if err := c.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			var got *bool
			_, done, err := n.agent(slog.New(slog.DiscardHandler), nil, func(cfg *nodeagent.Config) error {
				got = &cfg.DisableDeltas
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			done()
			if got == nil || *got != tt.disabled {
				t.Fatalf("DisableDeltas = %v, want %v", got, tt.disabled)
			}
		})
	}
}
