package main

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

func newVerifyCmd() *cobra.Command {
	var trust []string
	var image string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify --trust P.pub [--trust Q.pub ...] [--image FILE] FILE.cose",
		Short: "Verify a signed manifest or deployment",
		Long: `Verify a signed document (manifest or deployment) against trusted public keys.

The document must be a tagged COSE_Sign1 with algorithm EdDSA, a key id
matching one of the --trust keys, and the content type of a manifest or a
deployment; its payload must then decode strictly. For a deployment, the
manifests it carries are verified too (pass the manifest key as well).
With --image, the image's SHA-256 digest and size must match the manifest.

Exit status 0 when valid (the document's type is printed), 1 with one line
naming the reason otherwise: bad signature, unknown kid, wrong algorithm,
wrong content type, digest mismatch, size mismatch, malformed CBOR, not
tagged, invalid document.`,
		Example: "  edgeota verify --trust operator.pub --image kws.tflite kws-1.4.0.cose",
		Args:    exactArgs(1, "one signed document (FILE.cose)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) == 0 {
				return usagef("at least one --trust P.pub is required")
			}
			keys, err := readPublicKeys(trust)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			res, verr := verifyDocument(b, keys, image)
			if asJSON {
				out := map[string]any{"file": args[0], "valid": verr == nil}
				if verr != nil {
					out["reason"] = reasonOf(verr)
					out["error"] = verr.Error()
				} else {
					out["type"] = res.kind
					out["kid"] = res.kid
					out["document"] = res.view
				}
				if err := writeJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
				if verr != nil {
					return &silentExit{code: 1}
				}
				return nil
			}
			if verr != nil {
				return fmt.Errorf("%s: %w", args[0], explain(verr))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid %s (%s), signed by kid %s\n", args[0], res.kind, res.summary, res.kid)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&trust, "trust", nil, "trusted public key file (PKIX PEM); repeat for several")
	cmd.Flags().StringVar(&image, "image", "", "image file whose digest and size must match the manifest")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the verdict as JSON (exit status unchanged)")
	return cmd
}

// silentExit ends the command with a code and no further message (the
// command already printed its verdict).
type silentExit struct{ code int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var (
	errDigestMismatch = errors.New("digest mismatch")
	errSizeMismatch   = errors.New("size mismatch")
)

// reasonOf names the class of a verification failure in the words of the
// verify command's help.
func reasonOf(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{errDigestMismatch, "digest mismatch"},
		{errSizeMismatch, "size mismatch"},
		{sign.ErrNotTagged, "not tagged"},
		{sign.ErrSignature, "bad signature"},
		{sign.ErrUnknownKey, "unknown kid"},
		{sign.ErrAlgorithm, "wrong algorithm"},
		{sign.ErrContentType, "wrong content type"},
		{sign.ErrMalformed, "malformed CBOR"},
		{protocol.ErrMalformed, "malformed CBOR"},
		{protocol.ErrInvalid, "invalid document"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "invalid"
}

// explain prefixes err with its reason unless its message starts with it.
func explain(err error) error {
	r := reasonOf(err)
	if strings.HasPrefix(err.Error(), r) {
		return err
	}
	return fmt.Errorf("%s: %w", r, err)
}

type verified struct {
	kind, kid, summary string
	view               any
}

// verifyDocument verifies b with keys trusted for every role, choosing the
// role from the envelope's content type.
func verifyDocument(b []byte, keys []crypto.PublicKey, image string) (*verified, error) {
	env, err := sign.Parse(b)
	if err != nil {
		return nil, err
	}
	manifestKeys, err := sign.NewTrustStore(sign.RoleManifest, keys...)
	if err != nil {
		return nil, err
	}
	switch env.ContentType {
	case protocol.ContentTypeManifest:
		m, err := manifestKeys.VerifyManifest(b)
		if err != nil {
			return nil, err
		}
		if image != "" {
			if err := checkImage(m, image); err != nil {
				return nil, err
			}
		}
		return &verified{"manifest", env.KeyID.String(),
			fmt.Sprintf("%s %s seq %d epoch %d, %d bytes", m.Component, m.Version, m.Seq, m.Epoch, m.Size), manifestView(m)}, nil
	case protocol.ContentTypeDeployment:
		deployKeys, err := sign.NewTrustStore(sign.RoleDeployment, keys...)
		if err != nil {
			return nil, err
		}
		d, err := deployKeys.VerifyDeployment(b)
		if err != nil {
			return nil, err
		}
		m, err := manifestKeys.VerifyManifest(d.Manifest)
		if err != nil {
			return nil, fmt.Errorf("embedded manifest: %w", err)
		}
		if len(d.RollbackManifest) > 0 {
			if _, err := manifestKeys.VerifyManifest(d.RollbackManifest); err != nil {
				return nil, fmt.Errorf("rollback manifest: %w", err)
			}
		}
		if image != "" {
			if err := checkImage(m, image); err != nil {
				return nil, err
			}
		}
		return &verified{"deployment", env.KeyID.String(),
			fmt.Sprintf("%s seq %d: %s %s to %q in %d waves", d.ID, d.Seq, m.Component, m.Version, d.Cohort, len(d.Waves)), deploymentView(d)}, nil
	}
	return nil, fmt.Errorf("%w %q: not a manifest or deployment", sign.ErrContentType, env.ContentType)
}

func checkImage(m *protocol.Manifest, image string) error {
	d, size, err := digestFile(image)
	if err != nil {
		return err
	}
	if size != m.Size {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", errSizeMismatch, image, size, m.Size)
	}
	if !bytes.Equal(d[:], m.Digest[:]) {
		return fmt.Errorf("%w: %s has sha256 %s, the manifest says %s", errDigestMismatch, image, d, m.Digest)
	}
	return nil
}
