package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/protocol/delta"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-out", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"a-head", "b-finetune", "c-operator", "d-unrelated"} {
		read := func(suffix string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, name+suffix))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		got, err := delta.Apply(read(".base"), read(".delta"))
		if err != nil || !bytes.Equal(got, read(".target")) {
			t.Errorf("%s: the delta written does not rebuild the target written: %v", name, err)
		}
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("summary lacks %s:\n%s", name, stdout.String())
		}
	}
	if code := run([]string{"-nosuchflag"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}
