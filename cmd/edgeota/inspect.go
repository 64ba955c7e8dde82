package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

func newInspectCmd() *cobra.Command {
	var typ string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print any protocol document as JSON",
		Long: `Print any edgeota protocol document as indented JSON on stdout.

FILE (or - for stdin) holds a signed manifest or deployment (COSE_Sign1),
or an unsigned manifest, deployment, Hello, health report, status event,
an MQTT batch of health reports or status events, or a delta offer, as CBOR
bytes or as hex text. The kind is detected: each document's strict decoder
accepts only its own keys; --type forces one of manifest, deployment,
hello, health, status, health-batch, event-batch, delta-offer. A signed
manifest's delta offer (in its unprotected header, not signed) is shown as
delta_offer.

Digests are printed in hex, classes as UUIDs, times in RFC 3339, and units
are spelled in the field names (size_bytes, latency_p99_us...). Inspect
does not check signatures (use edgeota verify); warnings such as that, or an
expired deployment, go to stderr.`,
		Example: "  edgeota inspect kws-1.4.0.cose\n  edgeota inspect --type health report.cbor",
		Args:    exactArgs(1, "one file (or - for stdin)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4*protocol.MaxDocSize))
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			warn := func(format string, a ...any) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: "+format+"\n", a...) }
			if h, ok := asHex(b); ok {
				b = h
				warn("input read as hex text")
			}
			out, err := inspectDocument(b, typ, warn, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "document type instead of detecting it")
	return cmd
}

// asHex decodes b when it is only hex digits (and surrounding white space).
func asHex(b []byte) ([]byte, bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || len(t)%2 != 0 {
		return nil, false
	}
	out := make([]byte, len(t)/2)
	if _, err := hex.Decode(out, t); err != nil {
		return nil, false
	}
	return out, true
}

type unsignedDecoder struct {
	kind   string
	decode func([]byte) (any, error)
}

var unsignedDecoders = []unsignedDecoder{
	{"manifest", func(b []byte) (any, error) {
		m, err := protocol.DecodeManifest(b)
		if err != nil {
			return nil, err
		}
		return manifestView(m), nil
	}},
	{"deployment", func(b []byte) (any, error) {
		d, err := protocol.DecodeDeployment(b)
		if err != nil {
			return nil, err
		}
		return deploymentView(d), nil
	}},
	{"hello", func(b []byte) (any, error) {
		h, err := protocol.DecodeHello(b)
		if err != nil {
			return nil, err
		}
		return helloView(h), nil
	}},
	{"health", func(b []byte) (any, error) {
		var r protocol.HealthReport
		if err := protocol.DecodeHealthReport(b, &r); err != nil {
			return nil, err
		}
		return healthView(&r), nil
	}},
	{"status", func(b []byte) (any, error) {
		e, err := protocol.DecodeStatusEvent(b)
		if err != nil {
			return nil, err
		}
		return statusView(e), nil
	}},
	{"health-batch", func(b []byte) (any, error) {
		rs, err := protocol.DecodeHealthBatch(b)
		if err != nil {
			return nil, err
		}
		out := make([]healthJSON, len(rs))
		for i := range rs {
			out[i] = healthView(&rs[i])
		}
		return out, nil
	}},
	{"event-batch", func(b []byte) (any, error) {
		es, err := protocol.DecodeEventBatch(b)
		if err != nil {
			return nil, err
		}
		out := make([]statusJSON, len(es))
		for i := range es {
			out[i] = statusView(&es[i])
		}
		return out, nil
	}},
	{"delta-offer", func(b []byte) (any, error) {
		o, err := protocol.DecodeDeltaOffer(b)
		if err != nil {
			return nil, err
		}
		return deltaOfferView(o), nil
	}},
}

type signedView struct {
	Type              string `json:"type"`
	KeyID             string `json:"kid"`
	ContentType       string `json:"content_type"`
	SignatureVerified bool   `json:"signature_verified"`
	Document          any    `json:"document"`
	// DeltaOffer is the unprotected header's offer (v1.4), not signed.
	DeltaOffer *deltaOfferJSON `json:"delta_offer,omitempty"`
}

type docView struct {
	Type     string `json:"type"`
	Document any    `json:"document"`
}

// inspectDocument detects and decodes any document of the contract.
func inspectDocument(b []byte, typ string, warn func(string, ...any), now time.Time) (any, error) {
	if typ == "" && len(b) > 0 && b[0] == 0xd2 {
		env, err := sign.Parse(b)
		if err != nil {
			return nil, err
		}
		doc, kind, err := decodePayload(env.ContentType, env.Payload)
		if err != nil {
			return nil, err
		}
		warn("signature not verified (kid %s); use edgeota verify --trust KEY.pub", env.KeyID)
		if kind == "deployment" {
			d, _ := protocol.DecodeDeployment(env.Payload)
			if d.Expires <= uint64(now.Unix()) {
				warn("deployment %s expired at %s", d.ID, time.Unix(int64(d.Expires), 0).UTC().Format(time.RFC3339))
			}
		}
		v := signedView{"signed-" + kind, env.KeyID.String(), env.ContentType, false, doc, nil}
		if raw, ok := env.Unprotected(protocol.DeltaOfferLabel); ok {
			o, err := protocol.DecodeDeltaOffer(raw)
			if err != nil {
				return nil, fmt.Errorf("delta offer in the unprotected header: %w", err)
			}
			v.DeltaOffer = deltaOfferView(o)
		}
		return v, nil
	}
	var errs []error
	for _, d := range unsignedDecoders {
		if typ != "" && d.kind != typ {
			continue
		}
		doc, err := d.decode(b)
		if err == nil {
			return docView{d.kind, doc}, nil
		}
		errs = append(errs, fmt.Errorf("as %s: %w", d.kind, err))
	}
	if len(errs) == 0 {
		return nil, usagef("--type %q: want manifest, deployment, hello, health, status, health-batch, event-batch or delta-offer", typ)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("not a protocol document: %w", errors.Join(errs...))
}
