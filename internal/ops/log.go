package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns the logger of a server process: format "text"
// (logfmt-like key=value) or "json" (one object per line), writing to w
// from level up. A key given again at the top level — a component's logger
// made from its parent's with its own "component", or a record's own
// attribute — replaces the earlier value in place instead of repeating
// the key, so every line names one component.
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(&uniqueKeys{inner: slog.NewTextHandler(w, opts)}), nil
	case "json":
		return slog.New(&uniqueKeys{inner: slog.NewJSONHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// uniqueKeys is a slog.Handler that holds the logger's top-level
// attributes itself, so a later one with the same key replaces an earlier
// one; it hands them to inner with each record. After WithGroup the
// attributes go to inner as they are (a group's keys are its own).
type uniqueKeys struct {
	inner slog.Handler
	attrs []slog.Attr // top-level attributes of With, keys unique
}

// Enabled implements slog.Handler.
func (h *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (h *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	return &uniqueKeys{inner: h.inner, attrs: mergeAttrs(h.attrs, as)}
}

// WithGroup implements slog.Handler.
func (h *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.inner.WithAttrs(h.attrs).WithGroup(name)
}

// Handle implements slog.Handler.
func (h *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	own := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		own = append(own, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(mergeAttrs(h.attrs, own)...)
	return h.inner.Handle(ctx, out)
}

// mergeAttrs returns base with more added: an attribute whose key base
// already has replaces it in place. base is not modified.
func mergeAttrs(base, more []slog.Attr) []slog.Attr {
	out := append(make([]slog.Attr, 0, len(base)+len(more)), base...)
next:
	for _, a := range more {
		for i := range out {
			if out[i].Key == a.Key {
				out[i] = a
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}
