package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

func newSignCmd() *cobra.Command {
	var (
		keyFile, image, component, ver, class, out, onShortfall, requiresAgent, requiresRuntime, location string
		seq, epoch, probSeconds, minInferences                                                            uint64
		maxErr, maxP99, maxRAM, maxCPU                                                                    uint64
		issued                                                                                            int64
		force, asJSON                                                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "sign --key K --image FILE --component C --version V --seq N --class UUID --out M.cose",
		Short: "Sign a model image: write its COSE_Sign1 manifest",
		Long: `Sign a model image: compute its SHA-256 digest and size and write a signed
manifest (docs/protocol.md section 3, a tagged COSE_Sign1 over deterministic CBOR).

Nodes accept a manifest only when its seq is above every seq they installed
for the component and its epoch is not below their floor; --seq must
therefore grow with every release. To roll a fleet back to an older image,
sign that image again under a new, higher seq.

Probation (optional) is the policy a node applies after activating the
image: it confirms after --probation-seconds and --min-inferences, and
reverts when a bound (--max-error-permille, --max-p99-us, --max-ram-bytes,
--max-cpu-permille) is broken. --on-shortfall says what happens when the
minimum inferences are not reached within 4 times the probation seconds.`,
		Example: `  edgeota sign --key operator.key --image kws.tflite --component kws-model \
      --version 1.4.0 --seq 42 --class 6ba7b810-9dad-11d1-80b4-00c04fd430c8 \
      --epoch 1 --probation-seconds 600 --min-inferences 1000 \
      --max-error-permille 20 --max-p99-us 80000 --out kws-1.4.0.cose
  # with a key inside an HSM (edgeota keygen --pkcs11) instead of a file:
  edgeota sign --key 'pkcs11:token=edgeota;object=operator?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt' \
      --image kws.tflite --component kws-model --version 1.4.0 --seq 42 \
      --class 6ba7b810-9dad-11d1-80b4-00c04fd430c8 --out kws-1.4.0.cose`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for flag, v := range map[string]string{"--key": keyFile, "--image": image, "--component": component,
				"--version": ver, "--class": class, "--out": out} {
				if v == "" {
					return usagef("%s is required", flag)
				}
			}
			if !cmd.Flags().Changed("seq") || seq == 0 {
				return usagef("--seq N is required and at least 1 (it must grow with every release)")
			}
			cls, err := protocol.ParseClass(class)
			if err != nil {
				return usagef("--class: %v", err)
			}
			priv, done, err := openSigningKey(keyFile)
			if err != nil {
				return err
			}
			defer done()
			digest, size, err := digestFile(image)
			if err != nil {
				return err
			}
			m := &protocol.Manifest{
				Format: protocol.ManifestFormat, Seq: seq, Component: component, Version: ver,
				Digest: digest, Size: size, Class: cls, Epoch: epoch, Location: location,
			}
			if issued < 0 {
				m.Issued = uint64(time.Now().Unix())
			} else {
				m.Issued = uint64(issued)
			}
			f := cmd.Flags()
			if f.Changed("probation-seconds") || f.Changed("min-inferences") || f.Changed("max-error-permille") ||
				f.Changed("max-p99-us") || f.Changed("max-ram-bytes") || f.Changed("max-cpu-permille") || f.Changed("on-shortfall") {
				p := &protocol.Probation{Seconds: probSeconds, MinInferences: minInferences}
				bound := func(name string, v uint64) *uint64 {
					if f.Changed(name) {
						return &v
					}
					return nil
				}
				p.MaxErrorPermille = bound("max-error-permille", maxErr)
				p.MaxP99Micros = bound("max-p99-us", maxP99)
				p.MaxRAMBytes = bound("max-ram-bytes", maxRAM)
				p.MaxCPUPermille = bound("max-cpu-permille", maxCPU)
				switch onShortfall {
				case "revert":
					p.OnShortfall = protocol.ShortfallRevert
				case "confirm":
					p.OnShortfall = protocol.ShortfallConfirm
				default:
					return usagef("--on-shortfall %q: want revert or confirm", onShortfall)
				}
				m.Probation = p
			}
			if requiresAgent != "" || requiresRuntime != "" {
				m.Requires = &protocol.Requires{MinAgentVersion: requiresAgent, Runtime: requiresRuntime}
			}
			signer, err := sign.NewSigner(priv)
			if err != nil {
				return err
			}
			signed, err := signer.SignManifest(m)
			if err != nil {
				return err
			}
			if err := writeOutput(out, signed, force); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"out": out, "kid": signer.KeyID().String(),
					"manifest": manifestView(m), "bytes": len(signed)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s %s seq %d epoch %d (%d bytes, sha256 %s) with kid %s -> %s\n",
				m.Component, m.Version, m.Seq, m.Epoch, m.Size, m.Digest, signer.KeyID(), out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", "", keyFlagHelp)
	fl.StringVar(&image, "image", "", "model image file to sign")
	fl.StringVar(&component, "component", "", "component the image is, e.g. kws-model")
	fl.StringVar(&ver, "version", "", "human version label, e.g. 1.4.0")
	fl.Uint64Var(&seq, "seq", 0, "manifest sequence number, strictly increasing per component")
	fl.StringVar(&class, "class", "", "device class UUID the image is built for")
	fl.Uint64Var(&epoch, "epoch", 0, "security epoch: nodes that confirm this image refuse older epochs")
	fl.StringVar(&location, "location", "", "CoAP path of the image (default /m/<hex digest>)")
	fl.Uint64Var(&probSeconds, "probation-seconds", 0, "probation length in seconds after activation")
	fl.Uint64Var(&minInferences, "min-inferences", 0, "inferences needed before probation can end")
	fl.Uint64Var(&maxErr, "max-error-permille", 0, "probation bound: errors per thousand inferences")
	fl.Uint64Var(&maxP99, "max-p99-us", 0, "probation bound: p99 inference latency in microseconds")
	fl.Uint64Var(&maxRAM, "max-ram-bytes", 0, "probation bound: RAM in use, bytes")
	fl.Uint64Var(&maxCPU, "max-cpu-permille", 0, "probation bound: CPU per-mille of one core")
	fl.StringVar(&onShortfall, "on-shortfall", "revert", "when minimum inferences are not reached in 4x the probation: revert or confirm")
	fl.StringVar(&requiresAgent, "requires-agent", "", "minimum node agent version, e.g. 0.3.0")
	fl.StringVar(&requiresRuntime, "requires-runtime", "", "inference runtime the node must offer")
	fl.Int64Var(&issued, "issued", -1, "issue time in Unix seconds (default: now)")
	fl.StringVar(&out, "out", "", "signed manifest file to write")
	fl.BoolVar(&force, "force", false, "overwrite --out if it exists")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// digestFile streams a file through SHA-256.
func digestFile(path string) (protocol.Digest, uint64, error) {
	var d protocol.Digest
	f, err := os.Open(path)
	if err != nil {
		return d, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return d, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if n == 0 {
		return d, 0, fmt.Errorf("%s is empty", path)
	}
	copy(d[:], h.Sum(nil))
	return d, uint64(n), nil
}
