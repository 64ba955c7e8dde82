package admin

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels an [*Error] matches with errors.Is, by its status.
var (
	// ErrUnauthorized: the request had no bearer token, or not the
	// gateway's (401).
	ErrUnauthorized = errors.New("admin API: unauthorized")
	// ErrBadRequest: the gateway could not read the request, such as a
	// query of a paged route with an unknown state or a limit over
	// [MaxPageLimit] (400).
	ErrBadRequest = errors.New("admin API: bad request")
	// ErrNotFound: no such model, node, rollout, key or route (404).
	ErrNotFound = errors.New("admin API: not found")
	// ErrConflict: the request conflicts with the state, such as deleting
	// an assigned model or resuming a rollout that is not paused (409).
	ErrConflict = errors.New("admin API: conflict")
	// ErrNeedsHTTPS: the client spoke plain HTTP to a gateway whose admin
	// API speaks HTTPS.
	ErrNeedsHTTPS = errors.New("the gateway's admin API speaks HTTPS")
)

// ErrorBody is the JSON body of every error answer of the admin API.
type ErrorBody struct {
	// Error says what went wrong.
	Error string `json:"error"`
	// Reason is a short word for the kind of failure, such as "not found",
	// "refused" or "bad signature".
	Reason string `json:"reason,omitempty"`
}

// Error is an error answer of the admin API.
type Error struct {
	// StatusCode is the HTTP status code; Status its text ("404 Not
	// Found").
	StatusCode int
	Status     string
	// Body is the error body; empty when the answer carried none.
	Body ErrorBody
	// https is true when a plain HTTP request met an HTTPS server.
	https bool
}

// Error renders the gateway's message and reason, or the status when the
// answer had no error body.
func (e *Error) Error() string {
	switch {
	case e.https:
		return ErrNeedsHTTPS.Error()
	case e.Body.Error != "" && e.Body.Reason != "":
		return fmt.Sprintf("gateway refused (%s): %s", e.Body.Reason, e.Body.Error)
	case e.Body.Error != "":
		return "gateway refused: " + e.Body.Error
	}
	return "gateway answered " + e.Status
}

// Is matches the sentinel of the error's status: [ErrUnauthorized],
// [ErrBadRequest], [ErrNotFound], [ErrConflict], or [ErrNeedsHTTPS].
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest && !e.https
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrNeedsHTTPS:
		return e.https
	}
	return false
}
