package operator

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config configures the controller.
type Config struct {
	// Image is the image of a store's pods when its spec names none.
	// Default "cleave:latest".
	Image string

	// ClusterDomain is the Kubernetes cluster's DNS domain, the last part
	// of every pod's name (POD.SERVICE.NAMESPACE.svc.DOMAIN). Default
	// "cluster.local".
	ClusterDomain string

	// StatusInterval is how often a store is synced when nothing happens,
	// to refresh its status from the routers. Default 10s.
	StatusInterval time.Duration

	// SplitInterval replaces StatusInterval while a split is planned or
	// running. Default 2s.
	SplitInterval time.Duration

	// Dial connects to a store's routers. Default DialRouters.
	Dial DialFunc

	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Image:          "cleave:latest",
		ClusterDomain:  "cluster.local",
		StatusInterval: 10 * time.Second,
		SplitInterval:  2 * time.Second,
		Dial:           DialRouters,
		Logger:         slog.Default(),
	}
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Image == "" {
		bad("Image is empty")
	}
	if c.ClusterDomain == "" || strings.HasPrefix(c.ClusterDomain, ".") || strings.HasSuffix(c.ClusterDomain, ".") {
		bad("ClusterDomain %q: want a domain like cluster.local, without a leading or trailing dot", c.ClusterDomain)
	}
	if c.StatusInterval <= 0 {
		bad("StatusInterval %v: must be positive", c.StatusInterval)
	}
	if c.SplitInterval <= 0 {
		bad("SplitInterval %v: must be positive", c.SplitInterval)
	}
	if c.Dial == nil {
		bad("Dial is nil")
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	return nil
}
