package deployspec

import (
	"fmt"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// checkManifestEnvelope checks that b is a COSE_Sign1 manifest whose payload
// decodes; the signature is left to whoever holds the manifest keys.
func checkManifestEnvelope(b []byte) error {
	e, err := sign.Parse(b)
	if err != nil {
		return err
	}
	if e.ContentType != protocol.ContentTypeManifest {
		return fmt.Errorf("content type %q is not a manifest", e.ContentType)
	}
	_, err = protocol.DecodeManifest(e.Payload)
	return err
}
