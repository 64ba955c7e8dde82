// Package gateway is the edgeota edge gateway: it caches signed ML models
// and serves them to IoT nodes over CoAP, keeps a registry of its nodes and
// what each should run, runs rollouts of signed deployments, forwards what
// nodes report upstream over MQTT, and answers an admin API.
//
// # Running a gateway
//
// Fill a [Config] (a data directory and the manifest keys are required;
// the zero value of everything else works), make the gateway with [New]
// and serve with [Gateway.Run] until its context ends:
//
//	g, err := gateway.New(gateway.Config{DataDir: "/var/lib/edgeota", Trust: keys})
//	if err != nil {
//		return err
//	}
//	return g.Run(ctx) // closes everything when ctx ends
//
// New validates the configuration (never changing the caller's), opens the
// database and listens; Run serves until its context ends. `edgeota
// gateway` is this, with flags; package gatewaytest runs a gateway inside a
// test.
//
// # What it serves
//
//   - CoAP over DTLS 1.2 ([Config.CoAPSAddr]) with a pre-shared key per
//     node, imported with [ImportKeys] or the admin API; plain CoAP
//     ([Config.InsecureUDP]) for development and simulators only. The
//     resources are those of docs/protocol.md section 5: images
//     block-wise, each node's assigned manifest with Observe, and the
//     nodes' Hello, health reports and status events. [Limits] keep it
//     serving under abuse.
//   - The MQTT uplink ([Config.MQTT], docs/protocol.md section 6): health
//     reports and status events in batches through a durable outbox, the
//     gateway's state and rollout statuses, and signed deployments
//     (docs/protocol.md section 7) from the deployment topics, verified
//     with [Config.DeployTrust].
//   - The admin HTTP API ([Config.AdminAddr], loopback by default; beyond
//     it a token is required, [ErrAdminNoToken]): models, assignments,
//     nodes, keys, deployments and rollouts, the provisioning audit log,
//     a database backup, Prometheus metrics and a liveness check.
//
// Time, for rollouts and everything a node's timing is judged by, comes
// from [Config.Clock]: a simulator passes a compressed clock, the default
// is the wall clock.
//
// # The contract
//
// What the gateway says to nodes and to the broker is the wire contract of
// docs/protocol.md; package protocol holds its types, codecs, paths and
// topics. docs/operations.md says how to run a gateway: keys, backups,
// metrics.
package gateway
