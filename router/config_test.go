package router

import (
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("default config without DataDir: %v", err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	bad := cfg
	bad.ID, bad.DefaultTimeout, bad.Logger = "", 0, nil
	bad.Bootstrap = &wire.TableInfo{}
	err := bad.Validate()
	for _, want := range []string{"ID", "DefaultTimeout", "Logger", "Bootstrap"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should mention %s", err, want)
		}
	}
	if _, err := New(bad); err == nil {
		t.Errorf("New accepted a bad config")
	}
	// A missing table file and no bootstrap: New fails naming the file.
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), TableFile) {
		t.Errorf("New without a table: %v", err)
	}
}
