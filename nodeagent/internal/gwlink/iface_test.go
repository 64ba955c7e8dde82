package gwlink_test

import (
	"edgeota/nodeagent"
	"edgeota/nodeagent/internal/gwlink"
)

// A Client is the node agent's Reporter and an Image its ImageSource.
var (
	_ nodeagent.Reporter    = (*gwlink.Client)(nil)
	_ nodeagent.ImageSource = (*gwlink.Image)(nil)
)
