package scenario_test

import (
	"errors"
	"testing"

	"edgeota/firmware-sim/scenario"
)

// FuzzParse checks that Parse never panics and that every error it
// returns wraps ErrScenario.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "faults: [{at: 1m, kind: reboot, nodes: 1.5%}]\n"))
	f.Add([]byte(secure))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := scenario.Parse(src)
		if err != nil && !errors.Is(err, scenario.ErrScenario) {
			t.Fatalf("error %v does not wrap ErrScenario", err)
		}
		if err == nil && (len(s.Fleet) == 0 || len(s.Models) == 0 || len(s.Expect) == 0) {
			t.Fatalf("Parse accepted a scenario without fleet, models or expectations")
		}
	})
}
