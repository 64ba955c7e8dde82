package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The gateway under systemd (scripts/packaging/systemd/edgeota-gateway.service,
// Type=notify with WatchdogSec): sd_notify(3) messages on the socket
// systemd names in NOTIFY_SOCKET. Without NOTIFY_SOCKET (a shell, a
// container) every message is dropped and nothing else changes.

// supervised is what the supervisor watches of a running gateway
// (*gateway.Gateway).
type supervised interface {
	Ready() <-chan struct{}
	HousekeepingRounds() uint64
}

// notifier sends one sd_notify state ("READY=1", ...).
type notifier interface {
	Notify(state string)
}

// sdNotifier sends to systemd's NOTIFY_SOCKET (github.com/coreos/go-systemd
// daemon); an error is logged once per kind of message, as a supervisor
// that cannot hear us will restart the gateway anyway.
type sdNotifier struct {
	log    *slog.Logger
	failed map[string]bool
}

func (n *sdNotifier) Notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && !n.failed[state] {
		if n.failed == nil {
			n.failed = map[string]bool{}
		}
		n.failed[state] = true
		n.log.Warn("cannot notify systemd", "state", state, "err", err)
	}
}

// watchdogTicks returns a channel that ticks at a third of systemd's
// watchdog interval (WATCHDOG_USEC, for this process), and a stop
// function; without a watchdog the channel is nil (never ticks).
func watchdogTicks(log *slog.Logger) (<-chan time.Time, func()) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog ignored", "err", err)
	}
	if interval <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(interval / 3)
	log.Info("systemd watchdog on: fed while the housekeeping loop advances", "interval", interval)
	return t.C, t.Stop
}

// supervise tells the service manager about g until ctx ends: READY=1
// once g serves; on each tick of watchdog, WATCHDOG=1 if g's housekeeping
// advanced since the last tick (a stuck gateway goes unfed and systemd
// restarts it); on each signal of hup, RELOADING=1, reload, READY=1; and
// STOPPING=1 when ctx ends.
func supervise(ctx context.Context, g supervised, sd notifier, watchdog <-chan time.Time, hup <-chan os.Signal, reload func(), log *slog.Logger) {
	select {
	case <-g.Ready():
		sd.Notify(daemon.SdNotifyReady)
	case <-ctx.Done():
		sd.Notify(daemon.SdNotifyStopping)
		return
	}
	last, stalled := g.HousekeepingRounds(), false
	var since time.Time // the tick that first saw last
	for {
		select {
		case <-ctx.Done():
			sd.Notify(daemon.SdNotifyStopping)
			return
		case <-hup:
			// MONOTONIC_USEC is what systemd 253 and later ask of a reload.
			sd.Notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
			reload()
			sd.Notify(daemon.SdNotifyReady)
		case now := <-watchdog:
			if n := g.HousekeepingRounds(); n != last {
				last, since, stalled = n, now, false
				sd.Notify(daemon.SdNotifyWatchdog)
				continue
			}
			if since.IsZero() {
				since = now
			}
			// A round takes about a second: ticks closer than that see no
			// progress now and then, a stall is longer.
			if !stalled && now.Sub(since) >= housekeepingStall {
				log.Error("the gateway's housekeeping loop has stopped: the systemd watchdog goes unfed", "rounds", last, "stalled", now.Sub(since))
				stalled = true
			}
		}
	}
}

// housekeepingStall is how long the housekeeping count may stand still
// before the supervisor logs that the gateway is stuck: a few of its
// one-second rounds.
const housekeepingStall = 3 * time.Second
