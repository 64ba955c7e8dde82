package protocol

import (
	"errors"
	"strings"
)

// MQTT topics of docs/protocol.md section 6. Every topic a gateway, `watch`
// or the simulator publishes, subscribes to or matches is built by the
// functions here and read back by [Topics.Parse]: no other code spells them.

// DefaultTopicPrefix is the topic prefix when none is configured.
const DefaultTopicPrefix = "edgeota/v1"

// TopicKind is the kind of a topic of section 6.
type TopicKind string

// The topics of section 6. The value is the topic's leaf under
// {prefix}/gw/{gw}/.
const (
	// TopicHealth (up, QoS 1): a CBOR array of at most 1024 health reports.
	TopicHealth TopicKind = "health"
	// TopicStatus (up, QoS 1): a CBOR array of at most 1024 status events.
	// The contract names its leaf "events".
	TopicStatus TopicKind = "events"
	// TopicState (up, QoS 1, retained): "online", or "offline" as the last
	// will.
	TopicState TopicKind = "state"
	// TopicRollout (up, QoS 1, retained): one rollout's JSON status, under
	// rollouts/{deployment}.
	TopicRollout TopicKind = "rollouts"
	// TopicDeployment (down, QoS 1, retained): a signed deployment under
	// deployments/{id}, for one gateway or, under {prefix}/fleet/, for all.
	// An empty retained payload withdraws it.
	TopicDeployment TopicKind = "deployments"
)

// Gateway state payloads of [TopicState].
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Topic is an MQTT topic of section 6, parsed.
type Topic struct {
	Kind    TopicKind
	Gateway string // the gateway id; empty for a fleet deployment
	ID      string // deployment id of TopicRollout and TopicDeployment
	Fleet   bool   // {prefix}/fleet/deployments/{id}
}

// ErrNotATopic is returned by [Topics.Parse] for a topic outside section 6.
var ErrNotATopic = errors.New("protocol: not a topic of the contract")

// Topics builds the topics of one prefix. Its zero value uses
// [DefaultTopicPrefix].
type Topics struct {
	// Prefix is prepended to every topic (default "edgeota/v1"), without a
	// trailing slash.
	Prefix string
}

func (t Topics) prefix() string {
	if t.Prefix == "" {
		return DefaultTopicPrefix
	}
	return t.Prefix
}

// Gateway returns {prefix}/gw/{gw}/{kind}, the topic of the health, status
// and state kinds. Pass "+" as gw for a subscription filter over all
// gateways.
func (t Topics) Gateway(gw string, kind TopicKind) string {
	return t.prefix() + "/gw/" + gw + "/" + string(kind)
}

// GatewayAll returns {prefix}/gw/{gw}/#, a filter for every topic of a
// gateway ("+" for all gateways).
func (t Topics) GatewayAll(gw string) string { return t.prefix() + "/gw/" + gw + "/#" }

// Rollout returns {prefix}/gw/{gw}/rollouts/{id}.
func (t Topics) Rollout(gw, id string) string {
	return t.Gateway(gw, TopicRollout) + "/" + id
}

// Deployment returns {prefix}/gw/{gw}/deployments/{id}. Pass "+" as id for
// a subscription filter.
func (t Topics) Deployment(gw, id string) string {
	return t.Gateway(gw, TopicDeployment) + "/" + id
}

// FleetDeployment returns {prefix}/fleet/deployments/{id}. Pass "+" as id
// for a subscription filter.
func (t Topics) FleetDeployment(id string) string {
	return t.prefix() + "/fleet/" + string(TopicDeployment) + "/" + id
}

// Parse reads a topic of section 6 under t's prefix. Ids are checked
// against section 0; anything else wraps [ErrNotATopic].
func (t Topics) Parse(topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, t.prefix()+"/")
	if !ok {
		return Topic{}, ErrNotATopic
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[0] == "fleet" && parts[1] == string(TopicDeployment) && ValidID(parts[2]):
		return Topic{Kind: TopicDeployment, ID: parts[2], Fleet: true}, nil
	case len(parts) < 3 || parts[0] != "gw" || !ValidID(parts[1]):
		return Topic{}, ErrNotATopic
	}
	gw, kind := parts[1], TopicKind(parts[2])
	switch {
	case len(parts) == 3 && (kind == TopicHealth || kind == TopicStatus || kind == TopicState):
		return Topic{Kind: kind, Gateway: gw}, nil
	case len(parts) == 4 && (kind == TopicRollout || kind == TopicDeployment) && ValidID(parts[3]):
		return Topic{Kind: kind, Gateway: gw, ID: parts[3]}, nil
	}
	return Topic{}, ErrNotATopic
}
