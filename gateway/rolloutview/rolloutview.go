// Package rolloutview holds the JSON form of a gateway rollout's status, as
// the admin API, `edgeota rollout status` and the retained MQTT rollout
// topic carry it.
package rolloutview

import "edgeota/gateway/internal/rollout"

// Status is a rollout's status.
type Status = rollout.StatusView
