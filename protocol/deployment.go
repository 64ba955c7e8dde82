package protocol

import (
	"fmt"

	"edgeota/protocol/cohort"
)

// FailurePolicy is what a gateway does when a deployment's gates fail
// (deployment key 8).
type FailurePolicy uint64

// Failure policies.
const (
	FailurePause    FailurePolicy = 0
	FailureRollback FailurePolicy = 1
)

// String returns "pause" or "rollback".
func (p FailurePolicy) String() string {
	switch p {
	case FailurePause:
		return "pause"
	case FailureRollback:
		return "rollback"
	}
	return fmt.Sprintf("FailurePolicy(%d)", uint64(p))
}

// Wave is one wave of a deployment (key 6): cumulative basis points of the
// cohort (100 = 1 %, 10000 = everyone) and how long its nodes soak.
type Wave struct {
	_ struct{} `cbor:",toarray"`
	// BasisPoints is the cumulative share of the cohort, 1 to 10000.
	BasisPoints uint64
	// BakeSeconds is the soak time of the wave.
	BakeSeconds uint64
}

// Gates are the health gates of a deployment (key 7), evaluated per node
// over its reports since activation. A nil gate is not checked.
type Gates struct {
	// MaxFailed is key 1: nodes failed, reverted or timed out over the
	// whole deployment.
	MaxFailed *uint64 `cbor:"1,keyasint,omitempty"`
	// MaxErrorPermille is key 2: errors per thousand inferences.
	MaxErrorPermille *uint64 `cbor:"2,keyasint,omitempty"`
	// MaxLatencyP99Micros is key 3: the highest reported p99.
	MaxLatencyP99Micros *uint64 `cbor:"3,keyasint,omitempty"`
	// MaxLatencyRegressionPermille is key 4: highest p99 after activation
	// over the highest p99 in the hour before, per mille.
	MaxLatencyRegressionPermille *uint64 `cbor:"4,keyasint,omitempty"`
	// MinReports is key 5: health reports each node must send after
	// activation before it counts as succeeded.
	MinReports *uint64 `cbor:"5,keyasint,omitempty"`
	// MaxBootLoops is key 6: nodes that reverted for boot loops.
	MaxBootLoops *uint64 `cbor:"6,keyasint,omitempty"`
	// Metrics is key 64: upper bounds on the health report metrics (health
	// key 64), by name.
	Metrics map[string]int64 `cbor:"64,keyasint,omitempty"`
}

// Deployment is a signed instruction to roll a manifest out to a cohort
// (docs/protocol.md section 7).
type Deployment struct {
	// ID is key 1.
	ID string `cbor:"1,keyasint"`
	// Seq is key 2: strictly increasing per signer.
	Seq uint64 `cbor:"2,keyasint"`
	// Manifest is key 3: the signed manifest (COSE_Sign1 bytes).
	Manifest []byte `cbor:"3,keyasint"`
	// Origin is key 4, optional: HTTP(S) URL of the image.
	Origin string `cbor:"4,keyasint,omitempty"`
	// Cohort is key 5: the target cohort expression.
	Cohort string `cbor:"5,keyasint"`
	// Waves is key 6.
	Waves []Wave `cbor:"6,keyasint"`
	// Gates is key 7.
	Gates Gates `cbor:"7,keyasint"`
	// OnFailure is key 8.
	OnFailure FailurePolicy `cbor:"8,keyasint"`
	// NodeTimeoutSeconds is key 9.
	NodeTimeoutSeconds uint64 `cbor:"9,keyasint"`
	// MaxConcurrent is key 10: transfers at once per gateway.
	MaxConcurrent uint64 `cbor:"10,keyasint"`
	// Gateways is key 11, optional: when present only these gateways apply
	// the deployment.
	Gateways []string `cbor:"11,keyasint,omitempty"`
	// Issued is key 12: Unix seconds.
	Issued uint64 `cbor:"12,keyasint"`
	// Expires is key 13: Unix seconds.
	Expires uint64 `cbor:"13,keyasint"`
	// RollbackManifest is key 14, optional: a signed manifest of the old
	// image under a higher seq.
	RollbackManifest []byte `cbor:"14,keyasint,omitempty"`
}

var gatesSchema = newSchema("gates", map[uint8]*field{
	1: opt("max failed", majUint),
	2: opt("max error per-mille", majUint),
	3: opt("max latency p99 us", majUint),
	4: opt("max latency regression per-mille", majUint),
	5: opt("min reports", majUint),
	6: opt("max boot loops", majUint),
})

var deploymentSchema = newSchema("deployment", map[uint8]*field{
	1:  req("id", majText),
	2:  req("seq", majUint),
	3:  req("manifest", majBytes),
	4:  opt("origin", majText),
	5:  req("cohort", majText),
	6:  req("waves", majArray),
	7:  {name: "gates", major: majMap, required: true, nested: gatesSchema},
	8:  req("on failure", majUint),
	9:  req("node timeout", majUint),
	10: req("max concurrent", majUint),
	11: opt("gateways", majArray),
	12: req("issued", majUint),
	13: req("expires", majUint),
	14: opt("rollback manifest", majBytes),
})

// DecodeDeployment decodes and validates the CBOR payload of a deployment.
// It neither verifies its signature nor the embedded manifests: see package
// sign.
func DecodeDeployment(b []byte) (*Deployment, error) {
	d := new(Deployment)
	if err := decode(b, deploymentSchema, false, d); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks the rules of section 7.
func (d *Deployment) Validate() error {
	if !ValidID(d.ID) {
		return fmt.Errorf("%w: deployment id %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, d.ID)
	}
	if len(d.Manifest) == 0 {
		return fmt.Errorf("%w: deployment carries no manifest", ErrInvalid)
	}
	if _, err := cohort.Parse(d.Cohort); err != nil {
		return fmt.Errorf("%w: deployment cohort: %v", ErrInvalid, err)
	}
	if err := ValidateWaves(d.Waves); err != nil {
		return err
	}
	if d.OnFailure > FailureRollback {
		return fmt.Errorf("%w: deployment on_failure %d, want 0 (pause) or 1 (rollback)", ErrInvalid, d.OnFailure)
	}
	if g := d.Gates.MaxErrorPermille; g != nil && *g > 1000 {
		return fmt.Errorf("%w: gate max_error_rate %d per-mille is over 1000", ErrInvalid, *g)
	}
	for _, gw := range d.Gateways {
		if !ValidID(gw) {
			return fmt.Errorf("%w: deployment gateway id %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, gw)
		}
	}
	if d.Expires <= d.Issued {
		return fmt.Errorf("%w: deployment expires (%d) is not after issued (%d)", ErrInvalid, d.Expires, d.Issued)
	}
	return nil
}

// ValidateWaves checks that waves are cumulative, strictly increasing, in
// 1..10000 basis points and end at 10000.
func ValidateWaves(ws []Wave) error {
	if len(ws) == 0 {
		return fmt.Errorf("%w: deployment has no waves", ErrInvalid)
	}
	var prev uint64
	for i, w := range ws {
		if w.BasisPoints == 0 || w.BasisPoints > 10000 {
			return fmt.Errorf("%w: wave %d: %d basis points, want 1 to 10000", ErrInvalid, i+1, w.BasisPoints)
		}
		if w.BasisPoints <= prev {
			return fmt.Errorf("%w: wave %d: %d basis points is not above the previous wave's %d", ErrInvalid, i+1, w.BasisPoints, prev)
		}
		prev = w.BasisPoints
	}
	if prev != 10000 {
		return fmt.Errorf("%w: last wave covers %d basis points, want 10000 (100%%)", ErrInvalid, prev)
	}
	return nil
}

// AppliesTo reports whether the deployment names gatewayID, or names no
// gateway at all.
func (d *Deployment) AppliesTo(gatewayID string) bool {
	if len(d.Gateways) == 0 {
		return true
	}
	for _, g := range d.Gateways {
		if g == gatewayID {
			return true
		}
	}
	return false
}
