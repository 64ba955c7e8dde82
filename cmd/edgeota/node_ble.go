package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/spf13/cobra"

	"edgeota/cmd/edgeota/internal/hci"
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
	keys, err := readEd25519PublicKeys("--factory-operator-key", b.factoryKeys)
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
func serveBLE(ctx context.Context, adapter string, svc *provisioning.Service) error {
	id, err := parseHCI(adapter)
	if err != nil {
		return err
	}
	p, err := hci.OpenPeripheral(id)
	if err != nil {
		return err
	}
	defer p.Close()
	err = svc.Serve(ctx, p)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// runNodeBLE runs a node with the BLE provisioning service: the agent runs
// with the committed configuration and restarts at each new commit.
func runNodeBLE(ctx context.Context, log *slog.Logger, n *nodeFlags, b *bleFlags) error {
	if n.id == "" {
		return usagef("--ble needs --id: the node id it was manufactured with")
	}
	if n.path == "" {
		return usagef("--flash FILE is required")
	}
	cls, err := protocol.ParseClass(n.class)
	if err != nil {
		return usagef("--class: %v", err)
	}
	var current atomic.Pointer[nodeagent.Agent]
	running := func() string {
		if a := current.Load(); a != nil {
			if r := a.Device().Running(); r != nil {
				return r.Manifest.Version
			}
		}
		return ""
	}
	onCommit, commits := provisioning.CommitChannel()
	svc, err := b.service(n.path, n.id, cls, n.component, running, log, onCommit)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bleErr := make(chan error, 1)
	go func() {
		err := serveBLE(ctx, b.hci, svc)
		if err != nil {
			log.Error("BLE provisioning service stopped", "hci", b.hci, "err", err)
			cancel()
		}
		bleErr <- err
	}()
	var first *provisioning.NodeConfig
	if pc, ok := svc.Current(); ok {
		first = &pc
		log.Info("provisioned configuration", "config", pc)
	} else {
		log.Info("not provisioned yet: waiting for a bundle over BLE", "hci", b.hci)
	}
	err = provisioning.Supervise(ctx, log, first, commits, func(ctx context.Context, pc *provisioning.NodeConfig, committed bool) error {
		if pc == nil && n.gateway == "" {
			return nil // nothing to talk to before provisioning
		}
		a, closeFn, err := n.agent(log, logReporter{log}, func(cfg *nodeagent.Config) error {
			if pc == nil {
				return nil
			}
			if committed {
				cfg.Provisioned = &nodeagent.Provisioning{Actor: pc.Signer, Serial: pc.Serial}
			}
			return provisioning.Apply(cfg, *pc)
		})
		if err != nil {
			return err
		}
		defer closeFn()
		current.Store(a)
		defer current.Store(nil)
		if err := a.Boot(ctx); err != nil {
			return err
		}
		return a.Run(ctx)
	})
	cancel()
	if berr := <-bleErr; berr != nil {
		return berr
	}
	return err
}
