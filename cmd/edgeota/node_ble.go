package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol"
)

// bleFlags are the flags of 'edgeota node --ble': serving the BLE
// provisioning service beside the agent (docs/provisioning.md).
type bleFlags struct {
	enabled     bool
	hci         string
	configFile  string
	secretFile  string
	factoryKeys []string
}

// register adds the flags to the node command.
func (b *bleFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&b.enabled, "ble", false, "serve the BLE provisioning service on --hci (needs root or CAP_NET_ADMIN+CAP_NET_RAW)")
	fl.StringVar(&b.hci, "hci", "hci0", "Bluetooth adapter of --ble")
	fl.StringVar(&b.configFile, "provisioning-file", "", "file of the provisioned configuration, mode 0600 (default: FLASH.provisioning.json)")
	fl.StringVar(&b.secretFile, "factory-secret-file", "", "the node's factory secret (16 to 64 bytes: literal, or hex: followed by hex); required with --ble")
	fl.StringSliceVar(&b.factoryKeys, "factory-operator-key", nil, "operator key(s) (PKIX PEM) a never-provisioned node accepts a bundle from; required with --ble")
}

// store returns the provisioning store beside the flash file.
func (b *bleFlags) store(flashPath string) provisioning.FileStore {
	if b.configFile != "" {
		return provisioning.FileStore{Path: b.configFile}
	}
	return provisioning.FileStore{Path: flashPath + ".provisioning.json"}
}

// service builds the node's provisioning service. onCommit receives each
// committed configuration (see commitChannel).
func (b *bleFlags) service(flashPath, nodeID string, class protocol.Class, component string, running func() string,
	log *slog.Logger, onCommit func(provisioning.NodeConfig)) (*provisioning.Service, error) {
	if len(b.factoryKeys) == 0 {
		return nil, usagef("--ble needs --factory-operator-key OP.pub: the keys a fresh node accepts a bundle from")
	}
	secret, err := readSecretFile("--factory-secret-file", b.secretFile)
	if err != nil {
		return nil, err
	}
	keys, err := readPublicKeys(b.factoryKeys)
	if err != nil {
		return nil, err
	}
	return provisioning.New(provisioning.Config{
		NodeID: nodeID, Class: class, Component: component, AgentVersion: nodeagent.AgentVersion, RunningVersion: running,
		FactorySecret: secret, FactoryKeys: keys, Store: b.store(flashPath), OnCommit: onCommit, Logger: log,
	})
}

// serveBLE serves the provisioning service on a Linux HCI adapter ("hci0"
// or "0") until ctx ends; a cancelled ctx is a normal end.
func serveBLE(ctx context.Context, hci string, svc *provisioning.Service) error {
	id, err := parseHCI(hci)
	if err != nil {
		return err
	}
	err = svc.ServeHCI(ctx, id)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// commitChannel returns an OnCommit hook and the channel it feeds: the
// latest committed configuration, never blocking the BLE connection.
func commitChannel() (func(provisioning.NodeConfig), <-chan provisioning.NodeConfig) {
	ch := make(chan provisioning.NodeConfig, 1)
	return func(c provisioning.NodeConfig) {
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

// applyProvisioned overlays a committed configuration on an agent
// configuration: labels, component, gateway URI, manifest trust, and the
// PSK when the gateway is coaps:// (the agent refuses a PSK with plain
// coap://).
func applyProvisioned(cfg *nodeagent.Config, pc provisioning.NodeConfig) error {
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
	cfg.PSK = nil
	if strings.HasPrefix(pc.Gateway, "coaps://") {
		cfg.PSK = pc.PSK
	}
	return nil
}

// superviseAgent runs the agent with the committed configuration (nil on
// a node never provisioned) and, at each commit, stops it, waits for it to
// return and runs it again with the new configuration, until ctx ends.
// run builds, boots and runs one agent; it must return when its ctx ends.
func superviseAgent(ctx context.Context, log *slog.Logger, first *provisioning.NodeConfig, commits <-chan provisioning.NodeConfig,
	run func(ctx context.Context, pc *provisioning.NodeConfig) error) error {
	pc := first
	for {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func(pc *provisioning.NodeConfig) { done <- run(runCtx, pc) }(pc)
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
			pc = &c
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
				pc = &c
			}
		}
	}
}
