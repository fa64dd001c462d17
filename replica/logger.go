package replica

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"

	"go.etcd.io/raft/v3"
)

// raftLogger adapts slog to raft.Logger. raft's Debug goes to slog Debug,
// Warning to Warn. Fatal and Panic log at Error and then panic: raft calls
// them only for broken invariants.
type raftLogger struct{ l *slog.Logger }

var _ raft.Logger = raftLogger{}

func (r raftLogger) log(level slog.Level, msg string) {
	r.l.Log(context.Background(), level, msg)
}

func (r raftLogger) enabled(level slog.Level) bool {
	return r.l.Enabled(context.Background(), level)
}

func (r raftLogger) Debug(v ...any) {
	if r.enabled(slog.LevelDebug) {
		r.log(slog.LevelDebug, fmt.Sprint(v...))
	}
}

func (r raftLogger) Debugf(format string, v ...any) {
	if r.enabled(slog.LevelDebug) {
		r.log(slog.LevelDebug, fmt.Sprintf(format, v...))
	}
}

func (r raftLogger) Info(v ...any) {
	if r.enabled(slog.LevelInfo) {
		r.log(slog.LevelInfo, fmt.Sprint(v...))
	}
}

func (r raftLogger) Infof(format string, v ...any) {
	if r.enabled(slog.LevelInfo) {
		r.log(slog.LevelInfo, fmt.Sprintf(format, v...))
	}
}

func (r raftLogger) Warning(v ...any) { r.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.log(slog.LevelWarn, fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any) { r.log(slog.LevelError, fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) {
	r.log(slog.LevelError, fmt.Sprintf(format, v...))
}

func (r raftLogger) Fatal(v ...any)                 { r.logAndPanic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { r.logAndPanic(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { r.logAndPanic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { r.logAndPanic(fmt.Sprintf(format, v...)) }

// logAndPanic logs s at error level and panics with it: raft calls Fatal
// and Panic only on a broken invariant.
func (r raftLogger) logAndPanic(s string) {
	r.log(slog.LevelError, s)
	panic(s)
}

// PebbleLogger returns a pebble.Logger that sends Pebble's informational
// chatter to log at debug level and its errors at error level. Fatalf logs
// and exits: Pebble calls it only when its on-disk state is unusable.
func PebbleLogger(log *slog.Logger) pebble.Logger { return pebbleLogger{log} }

type pebbleLogger struct{ log *slog.Logger }

func (q pebbleLogger) Infof(format string, args ...any) {
	q.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (q pebbleLogger) Errorf(format string, args ...any) {
	q.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (q pebbleLogger) Fatalf(format string, args ...any) {
	q.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}
