package deployspec_test

import (
	"errors"
	"os"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/deployspec"
)

// FuzzParse feeds arbitrary YAML to the deployment spec parser: it never
// panics, fails only with ErrSpec (or the reader's error), and whatever it
// accepts encodes as a valid deployment.
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("id: x\nseq: 1\nmanifest: m.cose\ntarget_cohort: '*'\nwaves: [{percent: 100, bake: 0s}]\n"))
	f.Add([]byte("waves: [{percent: 100.001}]"))
	f.Add([]byte("- a\n- b"))
	read := reader(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := deployspec.Parse(src, issued, read)
		if err != nil {
			if d != nil {
				t.Fatalf("error %v with a deployment", err)
			}
			if !errors.Is(err, deployspec.ErrSpec) && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("error %v is neither ErrSpec nor the reader's", err)
			}
			return
		}
		b, err := protocol.Marshal(d)
		if err != nil {
			t.Fatalf("accepted spec does not encode: %v", err)
		}
		if _, err := protocol.DecodeDeployment(b); err != nil {
			t.Fatalf("accepted spec does not decode back: %v", err)
		}
	})
}
