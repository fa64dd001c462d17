package ops

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLoggerKeysOnce checks that a component's logger made from its
// parent's (node → scrubber) names the component once, the inner one, in
// both formats, and that a record's own attribute replaces a logger's.
func TestLoggerKeysOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			lg, err := NewLogger(&buf, format, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			node := lg.With("component", "node", "node", 1, "cluster", "c1")
			node.With("component", "scrubber").Info("pass done", "chunks", 3)
			node.Info("engine", "component", "pebble")
			node.WithGroup("g").Info("grouped", "k", "v")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("want 3 lines, got %d:\n%s", len(lines), buf.String())
			}
			for i, want := range []string{"scrubber", "pebble", "node"} {
				line := lines[i]
				if n := strings.Count(line, "component"); n != 1 {
					t.Errorf("line %d names component %d times: %s", i, n, line)
				}
				if format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
					}
					if m["component"] != want || m["cluster"] != "c1" {
						t.Errorf("line %d: component %v cluster %v, want %s c1: %s", i, m["component"], m["cluster"], want, line)
					}
				} else if !strings.Contains(line, "component="+want) || !strings.Contains(line, "cluster=c1") {
					t.Errorf("line %d lacks component=%s or cluster=c1: %s", i, want, line)
				}
			}
		})
	}
	if _, err := NewLogger(&bytes.Buffer{}, "yaml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `"yaml"`) {
		t.Errorf("format yaml: err %v, want one naming it", err)
	}
}
