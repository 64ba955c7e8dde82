package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"edgeota/nodeagent"
)

// CommitChannel returns an OnCommit hook and the channel it feeds: the
// latest committed configuration, never blocking the BLE connection.
func CommitChannel() (func(NodeConfig), <-chan NodeConfig) {
	ch := make(chan NodeConfig, 1)
	return func(c NodeConfig) {
		for {
			select {
			case ch <- c:
				return
			default:
			}
			select {
			case <-ch:
			default:
			}
		}
	}, ch
}

// Apply overlays a committed configuration on an agent
// configuration: labels, component, gateway URI, manifest trust, the root
// keys when the bundle carried some (v1.3), and the PSK when the gateway
// is coaps:// (the agent refuses a PSK with plain coap://).
func Apply(cfg *nodeagent.Config, pc NodeConfig) error {
	if cfg.NodeID != "" && cfg.NodeID != pc.NodeID {
		return fmt.Errorf("provisioned for node %q, running as %q", pc.NodeID, cfg.NodeID)
	}
	trust, err := pc.ManifestTrust()
	if err != nil {
		return err
	}
	cfg.NodeID = pc.NodeID
	cfg.Labels = pc.Labels
	cfg.Component = pc.Component
	cfg.Gateway = pc.Gateway
	cfg.Trust = trust
	if len(pc.RootKeys) > 0 {
		cfg.Roots, cfg.RootThreshold = pc.RootKeys, pc.RootThreshold
	}
	cfg.PSK = nil
	if strings.HasPrefix(pc.Gateway, "coaps://") {
		cfg.PSK = pc.PSK
	}
	return nil
}

// Supervise runs a node's agent with its committed configuration (first:
// nil on a node never provisioned) and, at each commit, stops it, waits for
// it to return (so that it releases the flash) and runs it again with the
// new configuration, until ctx ends. run builds, boots and runs one agent
// and must return when its ctx ends; committed is true on the first run
// after a commit, when the agent should report the provisioning (see
// nodeagent.Config.Provisioned). A run that returns nil before its ctx ends
// has nothing to do (not provisioned yet): Supervise waits for a commit.
func Supervise(ctx context.Context, log *slog.Logger, first *NodeConfig, commits <-chan NodeConfig,
	run func(ctx context.Context, pc *NodeConfig, committed bool) error) error {
	pc, committed := first, false
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func(pc *NodeConfig, committed bool) { done <- run(runCtx, pc, committed) }(pc, committed)
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		case c := <-commits:
			log.Info("new provisioning committed; restarting the agent", "config", c)
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("agent stopped with an error", "err", err)
			}
			pc, committed = &c, true
		case err := <-done:
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			// The agent has nothing to do (not provisioned): wait for a commit.
			select {
			case <-ctx.Done():
				return nil
			case c := <-commits:
				pc, committed = &c, true
			}
		}
	}
}
