package main

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// What SIGHUP changes in a running gateway (docs/operations.md, "Reloading
// the configuration"): the --config file is read again with the command
// line's flags on top, exactly as at start; a file that does not parse,
// names an unknown key or gives a bad value is refused whole and the
// running settings stay. Of the settings that changed, these take effect
// at once; every other one is logged as needing a restart.
var reloadable = []string{"log-level", "admin-token-file"}

// tokenSetter is what a reload changes in the running gateway
// (*gateway.Gateway).
type tokenSetter interface {
	SetAdminToken(token string) error
}

// gatewayReloader re-reads the gateway's settings on SIGHUP.
type gatewayReloader struct {
	cfgFile string              // --config; "" reads no file
	cmdLine map[string][]string // the flags given on the command line, which win over the file
	running map[string]string   // every setting in effect, by flag name
	token   string              // the admin token in effect
	level   *slog.LevelVar      // the log level of the gateway's logger
	g       tokenSetter
	log     *slog.Logger
}

// newGatewayReloader records the settings of cmd, a gateway command whose
// flags are parsed and whose --config file was applied: cmdLine holds the
// flags the command line set (taken before the file was applied).
func newGatewayReloader(cmd *cobra.Command, cfgFile string, cmdLine map[string][]string, token string, level *slog.LevelVar, g tokenSetter, log *slog.Logger) *gatewayReloader {
	return &gatewayReloader{cfgFile: cfgFile, cmdLine: cmdLine, running: flagValues(cmd.Flags()), token: token, level: level, g: g, log: log}
}

// commandLineFlags returns the flags of fs that were set so far (by the
// command line, when called before the --config file is applied), each
// with its values in order.
func commandLineFlags(fs *pflag.FlagSet) map[string][]string {
	set := map[string][]string{}
	fs.Visit(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			set[f.Name] = sv.GetSlice()
		} else {
			set[f.Name] = []string{f.Value.String()}
		}
	})
	return set
}

// flagValues returns the value of every flag of fs, by name.
func flagValues(fs *pflag.FlagSet) map[string]string {
	vals := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) { vals[f.Name] = f.Value.String() })
	return vals
}

// load returns the settings the command line and the --config file give
// now, read as at start: a new gateway command with the command line's
// flags set, then the file applied.
func (r *gatewayReloader) load() (map[string]string, error) {
	gw, _, err := newRootCmd().Find([]string{"gateway"})
	if err != nil {
		return nil, err
	}
	fs := gw.Flags()
	if err := gw.ParseFlags(nil); err != nil { // merges the persistent flags (log-level, log-format)
		return nil, err
	}
	for name, vals := range r.cmdLine {
		for _, v := range vals {
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	if r.cfgFile != "" {
		if err := applyConfigFile(gw, r.cfgFile); err != nil {
			return nil, err
		}
	}
	return flagValues(fs), nil
}

// reload reads the settings again and applies what can change while the
// gateway runs: the log level and the admin token (its file is read
// again even when its name did not change, so that a rotated token is
// taken). Anything refused leaves every running setting as it was.
func (r *gatewayReloader) reload() {
	next, err := r.load()
	if err == nil {
		err = r.apply(next)
	}
	if err != nil {
		r.log.Error("reload refused: the running configuration stays", "config", r.cfgFile, "err", err)
	}
}

// apply checks next and applies its reloadable settings; it logs every
// other setting that changed as waiting for a restart.
func (r *gatewayReloader) apply(next map[string]string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(next["log-level"])); err != nil {
		return fmt.Errorf("log-level %q: want debug, info, warn or error", next["log-level"])
	}
	token := ""
	if f := next["admin-token-file"]; f != "" {
		t, err := loadOrCreateToken(f, r.log)
		if err != nil {
			return err
		}
		token = t
	}
	tokenChanged := token != r.token
	if tokenChanged {
		if err := r.g.SetAdminToken(token); err != nil {
			return fmt.Errorf("admin-token-file: %w", err)
		}
		r.token = token
	}
	var applied, restart []string
	for name, v := range next {
		if name == "config" || name == "help" || r.running[name] == v {
			continue
		}
		if slices.Contains(reloadable, name) {
			applied = append(applied, name)
			r.running[name] = v
			continue
		}
		restart = append(restart, name)
	}
	slices.Sort(applied)
	slices.Sort(restart)
	r.level.Set(level)
	for _, name := range restart {
		r.log.Warn("setting changed: it takes effect at the next restart", "setting", name, "running", r.running[name], "new", next[name])
	}
	r.log.Info("configuration reloaded", "config", r.cfgFile, "applied", applied, "admin_token_replaced", tokenChanged,
		"log_level", level.String(), "need_restart", restart)
	return nil
}
