// Package uplink forwards a gateway's health reports and status events
// upstream over MQTT (docs/protocol.md section 6) with
// github.com/eclipse/paho.mqtt.golang, and receives signed deployments
// downstream.
//
// Items come from the gateway's durable outbox (package outbox): a report
// is there before its node got its 2.04, and leaves only when the broker
// acknowledged the QoS 1 publish that carried it. For each kind (health
// reports on the health topic, status events on the events topic) a publisher takes the oldest items in order and sends them as one
// CBOR array of at most 1024 items (the items' own CBOR bytes behind an
// array head: nothing is decoded or re-encoded) when BatchMax items are
// waiting or the oldest has waited BatchInterval. Up to InFlight batches
// are pipelined; a batch is acknowledged in the outbox when its publish
// token completes. paho resends unacknowledged publishes after a reconnect
// (its store keeps them), and after a gateway restart the outbox resends
// everything unacknowledged: duplicates only where QoS 1 allows them.
//
// The gateway's state topic carries the last will "offline" and, once
// connected, "online", both retained. Deployments arrive on the gateway's
// and the fleet's retained deployment topics and are handed to a callback.
// Rollout statuses leave on their retained rollout topics, latest wins.
// Every topic is built by protocol.Topics.
package uplink
