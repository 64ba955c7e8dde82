package main

import (
	"path/filepath"
	"strings"
	"testing"
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
