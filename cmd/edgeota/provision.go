package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-ble/ble"
	"github.com/spf13/cobra"

	"edgeota/cmd/edgeota/internal/hci"
	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/provisioner"
	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
)

// bleAdapter is a BLE central the provision commands use.
type bleAdapter interface {
	provisioner.Adapter
	Close() error
}

// openAdapter opens hci<id>; tests replace it with an in-memory air.
var openAdapter = func(id int) (bleAdapter, error) { return hci.OpenCentral(id) }

// parseHCI accepts "hci0" or "0".
func parseHCI(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "hci"))
	if err != nil || n < 0 || n > 15 {
		return 0, usagef("--hci %q: want hciN, e.g. hci0", s)
	}
	return n, nil
}

const bleHelp = `
Talking to a real adapter opens a raw HCI socket: run as root, or grant the
binary the two capabilities once:
  sudo setcap cap_net_raw,cap_net_admin+eip bin/edgeota
BlueZ must not hold the adapter meanwhile (sudo systemctl stop bluetooth).
go-ble logs its own errors as JSON on stderr; LOGXI='*=OFF' silences them.`

func newProvisionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Provision factory-fresh nodes over Bluetooth LE",
		Long: `Provision nodes over Bluetooth LE (docs/provisioning.md).

A node out of the box knows nothing but its id, its factory secret and the
operator keys it was manufactured to trust. 'provision apply' connects to
it as a BLE central, reads its id, and sends it a signed bundle: its labels,
component, gateway CoAP URI, trust anchors and DTLS pre-shared key (sealed
under the factory secret, which never crosses the radio); the node checks
the bundle, then commits it when told to.
` + bleHelp,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newProvisionScanCmd(), newProvisionApplyCmd(), newProvisionBundleCmd(), newProvisionAuditCmd())
	return cmd
}

func newProvisionScanCmd() *cobra.Command {
	var hci string
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scan [--hci hci0] [--timeout 10s] [--json]",
		Short: "List nearby nodes advertising the provisioning service",
		Long: `Scan for nodes advertising the edgeota provisioning service and list them,
strongest signal first: Bluetooth address, advertised name (the node id, cut
to 20 characters) and RSSI.
` + bleHelp,
		Example: `  sudo edgeota provision scan --hci hci0 --timeout 5s`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := parseHCI(hci)
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			a, err := openAdapter(id)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			found, err := provisioner.Scan(ctx, a, nil)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), found)
			}
			if len(found) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no node advertised the provisioning service within %s\n", timeout)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDR\tNAME\tRSSI")
			for _, f := range found {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", f.Addr, f.Name, f.RSSI)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&hci, "hci", "hci0", "Bluetooth adapter")
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "how long to listen")
	fl.BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// bundleFlags are the flags that describe a bundle.
type bundleFlags struct {
	node, labels, pskFile, gateway, key, secretFile, component string
	trust, operatorTrust, rootKeys                             []string
	serial, rootThreshold                                      uint64
}

func (b *bundleFlags) register(cmd *cobra.Command, nodeHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&b.node, "node", "", nodeHelp)
	fl.StringVar(&b.labels, "labels", "", "the node's labels for cohorts, k=v,k=v")
	fl.StringVar(&b.pskFile, "psk-file", "", "file holding the node's DTLS pre-shared key, 16 to 64 bytes: its literal content, or hex: followed by hex")
	fl.StringVar(&b.gateway, "gateway-uri", "", "the gateway's CoAP URI, coap://HOST[:PORT] or coaps://HOST[:PORT]")
	fl.StringVar(&b.key, "key", "", "operator key that signs the bundle, Ed25519: a PKCS#8 PEM file or a pkcs11: URI (RFC 7512) naming a key in an HSM")
	fl.StringVar(&b.secretFile, "factory-secret-file", "", "file holding the node's factory secret, 16 to 64 bytes: its literal content, or hex: followed by hex")
	fl.StringSliceVar(&b.trust, "trust", nil, "manifest key(s) the node will trust (PKIX PEM), comma-separated or repeated")
	fl.StringSliceVar(&b.operatorTrust, "operator-trust", nil, "operator key(s) the node will accept its next bundle from (default: the public half of --key)")
	fl.StringVar(&b.component, "component", "", "the component the node runs")
	fl.StringArrayVar(&b.rootKeys, "root-key", nil, "root key (PKIX PEM, Ed25519 or P-256) that may sign the node's first trust update (bundle key 64); repeat for several")
	fl.Uint64Var(&b.rootThreshold, "root-threshold", 0, "how many --root-key keys must sign the node's first trust update (0: 1)")
	fl.Uint64Var(&b.serial, "serial", 0, "bundle serial, above the node's last (default: the current Unix time)")
}

// readSecretFile reads a key file (a PSK or a factory secret, 16 to 64
// bytes) in the format of the node's and the gateway's key files: its
// literal content (trimmed), or "hex:" followed by hex digits.
func readSecretFile(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, usagef("%s FILE is required", flag)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := gateway.ParsePSK(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(k) < provision.MinPSKLen || len(k) > provision.MaxPSKLen {
		return nil, fmt.Errorf("%s %s: a key of %d bytes: want %d to %d", flag, path, len(k), provision.MinPSKLen, provision.MaxPSKLen)
	}
	return k, nil
}

// build signs the bundle the flags describe, for node id (when --node is
// empty) and component (when --component is empty).
func (b *bundleFlags) build(now time.Time, nodeID, component string) (signed []byte, bundle *provision.Bundle, err error) {
	if b.node != "" {
		nodeID = b.node
	}
	if b.component != "" {
		component = b.component
	}
	for flag, v := range map[string]string{"--gateway-uri": b.gateway, "--key": b.key, "--component": component} {
		if v == "" {
			return nil, nil, usagef("%s is required", flag)
		}
	}
	if len(b.trust) == 0 {
		return nil, nil, usagef("at least one --trust MANIFEST.pub is required: the node runs only models signed by these keys")
	}
	labels, err := parseLabels(b.labels)
	if err != nil {
		return nil, nil, err
	}
	if err := provision.ValidateGateway(b.gateway); err != nil {
		return nil, nil, usagef("--gateway-uri: %v", err)
	}
	priv, done, err := openSigningKey(b.key)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	operator, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("--key %s: %w: an ES256 (P-256) key; provisioning bundles are signed with Ed25519 operator keys (a node's operator keys are Ed25519)", b.key, sign.ErrKey)
	}
	manifestKeys, err := readEd25519PublicKeys("a provisioning bundle's --trust", b.trust)
	if err != nil {
		return nil, nil, err
	}
	operatorKeys := []ed25519.PublicKey{operator}
	if len(b.operatorTrust) > 0 {
		if operatorKeys, err = readEd25519PublicKeys("a provisioning bundle's --operator-trust", b.operatorTrust); err != nil {
			return nil, nil, err
		}
	}
	roots, err := trustKeys(b.rootKeys)
	if err != nil {
		return nil, nil, err
	}
	if len(roots) == 0 {
		roots = nil
	}
	psk, err := readSecretFile("--psk-file", b.pskFile)
	if err != nil {
		return nil, nil, err
	}
	secret, err := readSecretFile("--factory-secret-file", b.secretFile)
	if err != nil {
		return nil, nil, err
	}
	serial := b.serial
	if serial == 0 {
		serial = uint64(now.Unix())
	}
	sealed, err := provision.Seal(secret, nodeID, serial, psk)
	if err != nil {
		return nil, nil, err
	}
	bundle = &provision.Bundle{Format: provision.Format, NodeID: nodeID, Serial: serial, Issued: uint64(now.Unix()),
		Labels: labels, Component: component, Gateway: b.gateway, ManifestKeys: manifestKeys, OperatorKeys: operatorKeys, PSK: sealed,
		RootKeys: roots, RootThreshold: b.rootThreshold}
	signed, err = provision.Sign(bundle, priv)
	if err != nil {
		return nil, nil, err
	}
	return signed, bundle, nil
}

const bundleExample = `--labels site=plant-3,line=l2 --psk-file node-0001.psk \
      --gateway-uri coaps://gw-1.plant-3.example:5684 --key operator.key \
      --factory-secret-file node-0001.secret --trust models.pub --component kws-model`

func newProvisionBundleCmd() *cobra.Command {
	var b bundleFlags
	var out string
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "bundle --node ID --out FILE [bundle flags]",
		Short: "Write a signed provisioning bundle to a file, without a radio",
		Long: `Build and sign a provisioning bundle (docs/provisioning.md) and write it to a
file: the COSE_Sign1 that 'provision apply' would send. Useful to prepare
bundles ahead (send one with 'provision apply --bundle FILE') or to test a
node without a radio. The PSK is sealed under the factory secret for this node
id and serial; nothing in the file reveals it.`,
		Example: "  edgeota provision bundle --node node-0001 --out node-0001.bundle " + bundleExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if b.node == "" || out == "" {
				return usagef("--node ID and --out FILE are required")
			}
			signed, bundle, err := b.build(time.Now(), "", "")
			if err != nil {
				return err
			}
			if err := writeOutput(out, signed, force); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"file": out, "node_id": bundle.NodeID, "serial": bundle.Serial, "bytes": len(signed)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: node %s, serial %d, %d bytes\n", out, bundle.NodeID, bundle.Serial, len(signed))
			return nil
		},
	}
	b.register(cmd, "the node the bundle is for")
	cmd.Flags().StringVar(&out, "out", "", "file to write the signed bundle to")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite --out")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newProvisionApplyCmd() *cobra.Command {
	var b bundleFlags
	var addr, hci, bundleFile, audit string
	var timeout time.Duration
	var asJSON bool
	var gw adminFlags
	cmd := &cobra.Command{
		Use:   "apply --addr MAC [--bundle FILE | bundle flags] [--hci hci0] [--admin URL]",
		Short: "Provision one node over BLE: send it a signed bundle and commit it",
		Long: `Provision one node over BLE. Connect to the node at --addr, read its id,
class, component and the serial of its current bundle, sign a bundle for it
(or send the one in --bundle, written by 'provision bundle'), send it in
chunks, and commit it once the node has accepted it. The node applies it
atomically and restarts its agent: it then says Hello to the gateway at
--gateway-uri with the labels given here.

A fresh node accepts a bundle signed by a key it was manufactured to trust;
a provisioned node only one signed by its current operator anchors
(--operator-trust of its last bundle, by default the key that signed it).
The serial must be above the node's current one (default: now, in Unix
seconds). Anything refused leaves the node's configuration unchanged.

--audit FILE appends one JSON line per commit: who (key id) provisioned
which node, with what serial and labels, and when.

--admin URL registers the node's PSK with that running gateway once the node
has committed (PUT /v1/keys, as 'gateway keys import --admin' does), so the
node's first DTLS handshake finds its key. The admin API is checked before
the radio is used; with --bundle, --psk-file and --factory-secret-file are
needed too, and the key sealed in the bundle must be the one in --psk-file.
Re-provisioning a node with a new key this way rotates it: the gateway
closes the node's session, and the node opens a new one with the new key.
` + bleHelp,
		Example: "  sudo edgeota provision apply --addr 0c:8b:95:12:34:56 " + bundleExample + `
  sudo edgeota provision apply --addr 0c:8b:95:12:34:56 --admin https://gw-1:8080 --token-file admin.token \
      --admin-ca admin-ca.pem ` + bundleExample,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				return usagef("--addr MAC is required (find it with 'edgeota provision scan')")
			}
			id, err := parseHCI(hci)
			if err != nil {
				return err
			}
			var signed []byte
			if bundleFile != "" {
				if signed, err = os.ReadFile(bundleFile); err != nil {
					return err
				}
			}
			var reg *keyRegistration
			if gw.url != "" {
				if reg, err = newKeyRegistration(cmd.Context(), &gw, &b, signed); err != nil {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			a, err := openAdapter(id)
			if err != nil {
				return err
			}
			defer a.Close()
			cli, err := provisioner.Connect(ctx, a, addr)
			if err != nil {
				return err
			}
			res, err := applyBundle(ctx, cli, &b, signed)
			if err != nil {
				return err
			}
			if audit != "" {
				if err := appendAudit(audit, res); err != nil {
					return fmt.Errorf("node %s provisioned, but the audit log failed: %w", res.NodeID, err)
				}
			}
			out := applied{Result: res}
			if reg != nil {
				if err := reg.put(cmd.Context(), res.NodeID); err != nil {
					return fmt.Errorf("node %s provisioned (serial %d), but the gateway did not take its key: %w; "+
						"import it with 'edgeota gateway keys import --admin %s'", res.NodeID, res.Serial, err, gw.url)
				}
				out.KeyRegistered = gw.url
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			labels := protocol.FormatLabels(res.Labels)
			if labels == "" {
				labels = "(none)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "provisioned %s (%s): serial %d, labels %s, signed by %s; %d bytes in %d chunks\n",
				res.NodeID, res.Node.Addr, res.Serial, labels, res.Signer, res.Bytes, res.Chunks)
			if reg != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "registered the key of %s with %s\n", res.NodeID, gw.url)
			}
			return nil
		},
	}
	b.register(cmd, "the node id the bundle names (default: the id the node reads)")
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "", "the node's Bluetooth address")
	fl.StringVar(&hci, "hci", "hci0", "Bluetooth adapter")
	fl.StringVar(&bundleFile, "bundle", "", "send this signed bundle instead of building one")
	fl.StringVar(&audit, "audit", "", "append a JSON audit record of the commit to this file")
	fl.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	gw.register(fl, "", "register the node's PSK with the running gateway at this admin API URL after the commit")
	return cmd
}

// applied is what 'provision apply' reports: the provisioning, and the
// gateway that took the node's key, if any.
type applied struct {
	*provisioner.Result
	KeyRegistered string `json:"key_registered,omitempty"`
}

// keyRegistration registers a provisioned node's PSK with a running
// gateway, through its admin API.
type keyRegistration struct {
	c   *admin.Client
	gw  *adminFlags
	psk []byte
}

// newKeyRegistration checks, before any radio work, that the gateway's
// admin API answers with the token given, and reads the PSK to register:
// --psk-file; with a prepared bundle (signed), also the factory secret, to
// check that the bundle seals that same key.
func newKeyRegistration(ctx context.Context, gw *adminFlags, b *bundleFlags, signed []byte) (*keyRegistration, error) {
	psk, err := readSecretFile("--psk-file", b.pskFile)
	if err != nil {
		return nil, err
	}
	if signed != nil {
		secret, err := readSecretFile("--factory-secret-file", b.secretFile)
		if err != nil {
			return nil, err
		}
		env, err := sign.Parse(signed)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		bundle, err := provision.Decode(env.Payload)
		if err != nil {
			return nil, fmt.Errorf("--bundle: %w", err)
		}
		sealed, err := bundle.OpenPSK(secret)
		if err != nil {
			return nil, fmt.Errorf("--bundle: its key does not open with --factory-secret-file: %w", err)
		}
		if !bytes.Equal(sealed, psk) {
			return nil, usagef("--bundle seals another key than --psk-file: registering it would lock node %s out", bundle.NodeID)
		}
	}
	c, err := gw.client()
	if err != nil {
		return nil, err
	}
	if _, err := c.Keys(ctx); err != nil {
		return nil, fmt.Errorf("--admin: the gateway's key registry: %w", gw.explain(err))
	}
	return &keyRegistration{c: c, gw: gw, psk: psk}, nil
}

// put registers the key as node's; the gateway closes the node's session
// when the key changed.
func (r *keyRegistration) put(ctx context.Context, node string) error {
	_, err := r.c.PutKeys(ctx, []admin.Key{{NodeID: node, PSK: "hex:" + hex.EncodeToString(r.psk)}})
	return r.gw.explain(err)
}

// applyBundle provisions a connected node: with signed when given, else
// with a bundle built from b for the id the node reads.
func applyBundle(ctx context.Context, cli ble.Client, b *bundleFlags, signed []byte) (*provisioner.Result, error) {
	if signed != nil {
		return provisioner.Provision(ctx, cli, signed, provisioner.Options{})
	}
	return provisioner.ProvisionFor(ctx, cli, func(info provisioner.NodeInfo) ([]byte, error) {
		if b.node != "" && b.node != info.NodeID {
			return nil, fmt.Errorf("%s is node %q, not %q", info.Addr, info.NodeID, b.node)
		}
		signed, bundle, err := b.build(time.Now(), info.NodeID, info.Component)
		if err != nil {
			return nil, err
		}
		if bundle.Serial <= info.Serial {
			return nil, usagef("--serial %d: node %s holds serial %d; use a higher one", bundle.Serial, info.NodeID, info.Serial)
		}
		return signed, nil
	}, provisioner.Options{})
}

func appendAudit(path string, res *provisioner.Result) error {
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
