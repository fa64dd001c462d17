package operator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/cleavefs/cleave/client"
)

// Admin is what the controller asks a store's routers, over the wire
// protocol: their status answer (clusters, leaders, ranges, usage, split
// records), a split, and the replacement of a node that lost its data.
// *client.Client implements it. Used by one sync at a time; Close
// releases it.
type Admin interface {
	Status(ctx context.Context) (*client.Status, error)
	Split(ctx context.Context, spec client.SplitSpec) (*client.SplitStatus, error)
	ReplaceNode(ctx context.Context, cluster string, dead, id uint64, addr string, progress func(step string)) (*client.NodeStatus, error)
	Close() error
}

// Credentials are what the operator presents to a store's routers.
type Credentials struct {
	Token string      // the store's root token; "" without spec.authSecretName
	TLS   *tls.Config // trusting the store's CA; nil without spec.tlsSecretName
}

// DialFunc connects an Admin to the routers at addrs (client addresses).
type DialFunc func(ctx context.Context, addrs []string, cred Credentials) (Admin, error)

// dialTimeout bounds one connection attempt to a router.
const dialTimeout = 3 * time.Second

// DialRouters is the DialFunc of a running operator: an SDK client over
// every router.
func DialRouters(ctx context.Context, addrs []string, cred Credentials) (Admin, error) {
	opts := []client.Option{
		client.WithToken(cred.Token), client.WithClientName("cleave-operator"),
		client.WithDialTimeout(dialTimeout), client.WithLogger(slog.New(slog.DiscardHandler)),
	}
	if cred.TLS != nil {
		opts = append(opts, client.WithTLS(cred.TLS))
	}
	c, err := client.Dial(ctx, addrs, opts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// tlsFromCA returns a client TLS configuration trusting the PEM CA
// certificate caPEM (a store's secret's ca.crt).
func tlsFromCA(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("ca.crt holds no PEM certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}
