package radio

import "errors"

// ErrInvalidLink reports a [Link] that [New] or [Relay.SetLink] refused: a
// probability outside [0, 1], or a negative duration, bandwidth or queue
// limit. The error names the direction and the field.
var ErrInvalidLink = errors.New("invalid link")

// ErrClosed is returned by [Relay.Run] on a relay that is already closed,
// whether by [Relay.Close] or by an earlier Run that has returned.
var ErrClosed = errors.New("relay closed")

// ErrRunning is returned by [Relay.Run] while another call to Run on the same
// relay is in progress.
var ErrRunning = errors.New("relay already running")

// ErrUnknownProfile reports a radio profile name [LookupProfile] does not
// know.
var ErrUnknownProfile = errors.New("unknown radio profile")
