package rpc

import (
	"strings"
	"testing"
	"time"
)

// TestConfigDefaults checks that zero and negative settings read as the
// documented defaults, as NewServer and Dial have always treated them.
func TestConfigDefaults(t *testing.T) {
	sd := DefaultServerConfig()
	for _, c := range []ServerConfig{{}, {MaxFrame: -1, MaxInFlight: -1, OutQueue: -1, DefaultTimeout: -1}} {
		got := c.withDefaults()
		if got.MaxFrame != sd.MaxFrame || got.MaxInFlight != sd.MaxInFlight || got.OutQueue != sd.OutQueue ||
			got.DefaultTimeout != sd.DefaultTimeout || got.Logger == nil {
			t.Errorf("ServerConfig%+v.withDefaults() = %+v, want the defaults %+v", c, got, sd)
		}
	}
	if sd.MaxInFlight != 4096 || sd.OutQueue != 8192 || sd.DefaultTimeout != 10*time.Second ||
		sd.HelloTimeout != 10*time.Second || sd.PreAuthMaxFrame != 64<<10 || sd.ReadTimeout != 30*time.Second ||
		sd.IdleTimeout != 15*time.Minute || sd.MaxConns != 4096 || sd.MaxConnsPerIP != 1024 ||
		sd.MaxBytesInFlight != 64<<20 || sd.MaxProcessBytesInFlight != 512<<20 {
		t.Errorf("DefaultServerConfig() = %+v", sd)
	}
	dd := DefaultDialConfig()
	for _, c := range []DialConfig{{}, {MaxFrame: -1, OutQueue: -1, Timeout: -1}} {
		if got := c.withDefaults(); got != dd {
			t.Errorf("DialConfig%+v.withDefaults() = %+v, want %+v", c, got, dd)
		}
	}
	if dd.OutQueue != 8192 || dd.Timeout != 5*time.Second || dd.IdleTimeout != 5*time.Minute {
		t.Errorf("DefaultDialConfig() = %+v", dd)
	}
	kept := ServerConfig{MaxFrame: 1 << 20, MaxInFlight: 2, OutQueue: 3, DefaultTimeout: time.Second}.withDefaults()
	if kept.MaxFrame != 1<<20 || kept.MaxInFlight != 2 || kept.OutQueue != 3 || kept.DefaultTimeout != time.Second {
		t.Errorf("set values changed: %+v", kept)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Errorf("DefaultServerConfig().Validate() = %v", err)
	}
	if err := (ServerConfig{}).Validate(); err != nil {
		t.Errorf("zero ServerConfig: %v (zero means the default)", err)
	}
	err := ServerConfig{MaxFrame: -1, DefaultTimeout: -time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxFrame -1 is negative") || !strings.Contains(err.Error(), "DefaultTimeout -1s is negative") {
		t.Errorf("ServerConfig.Validate() = %v, want both fields named", err)
	}
	for _, tt := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{HelloTimeout: -1}, "HelloTimeout -1ns is negative"},
		{ServerConfig{MaxConnsPerIP: -3}, "MaxConnsPerIP -3 is negative"},
		{ServerConfig{PreAuthMaxFrame: 2 << 20, MaxFrame: 1 << 20}, "PreAuthMaxFrame 2097152 is over MaxFrame 1048576"},
		{ServerConfig{MaxConnsPerIP: 5000}, "MaxConnsPerIP 5000 is over MaxConns 4096"},
		{ServerConfig{MaxProcessBytesInFlight: 1 << 20}, "MaxBytesInFlight 67108864 is over MaxProcessBytesInFlight 1048576"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v.Validate() = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if err := DefaultDialConfig().Validate(); err != nil {
		t.Errorf("DefaultDialConfig().Validate() = %v", err)
	}
	if err := (DialConfig{OutQueue: -2}).Validate(); err == nil || !strings.Contains(err.Error(), "OutQueue -2 is negative") {
		t.Errorf("DialConfig.Validate() = %v, want OutQueue named", err)
	}
}
