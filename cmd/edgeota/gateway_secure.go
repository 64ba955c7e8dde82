package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"edgeota/gateway"
)

// coapFlags are the gateway's CoAP listeners and limits.
type coapFlags struct {
	coaps, coap string
	insecure    bool
	limits      gateway.Limits
}

func (f *coapFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.coaps, "coaps", ":5684", "UDP address of CoAP over DTLS with per-node keys (- to disable)")
	fl.BoolVar(&f.insecure, "insecure-udp", false, "also serve plain CoAP on --coap: no authentication, development and simulators only")
	fl.StringVar(&f.coap, "coap", ":5683", "UDP address of plain CoAP (only with --insecure-udp)")
	fl.Float64Var(&f.limits.SourceRate, "rate-source", 2000, "requests per second per source IP address (-1: off)")
	fl.IntVar(&f.limits.SourceBurst, "rate-source-burst", 0, "burst of --rate-source (0: twice the rate)")
	fl.Float64Var(&f.limits.SourceDropRate, "rate-source-drop", 0,
		"datagrams per second per source IP address beyond which they are dropped before decoding (0: ten times --rate-source; -1: off)")
	fl.IntVar(&f.limits.SourceDropBurst, "rate-source-drop-burst", 0, "burst of --rate-source-drop (0: one second's worth)")
	fl.Float64Var(&f.limits.NodeRate, "rate-node", 50, "requests per second per node: PSK identity, or source endpoint on plain UDP (-1: off)")
	fl.IntVar(&f.limits.NodeBurst, "rate-node-burst", 0, "burst of --rate-node (0: twice the rate)")
	fl.IntVar(&f.limits.MaxBody, "max-body", 1024, "largest node document in bytes (at most 1024); larger get 4.13")
	fl.IntVar(&f.limits.MaxSessions, "max-sessions", 10000, "DTLS sessions at once")
	fl.IntVar(&f.limits.MaxHandshakes, "max-handshakes", 256, "DTLS handshakes in progress at once")
	fl.IntVar(&f.limits.MaxHandshakesPerSource, "max-handshakes-per-source", 4, "DTLS handshakes in progress at once from one IP address")
}

func (f *coapFlags) apply(cmd *cobra.Command, gc *gateway.Config) error {
	if cmd.Flags().Changed("coap") && !f.insecure {
		return usagef("--coap serves plain, unauthenticated CoAP: it needs --insecure-udp (nodes use --coaps)")
	}
	if f.coaps == "-" && !f.insecure {
		return usagef("--coaps - leaves no CoAP service: keep DTLS, or add --insecure-udp for development")
	}
	if f.limits.MaxBody > 1024 {
		return usagef("--max-body %d: node documents are at most 1024 bytes (docs/protocol.md section 5)", f.limits.MaxBody)
	}
	gc.CoAPSAddr, gc.CoAPAddr, gc.InsecureUDP, gc.Limits = f.coaps, f.coap, f.insecure, f.limits
	return nil
}
