package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cleavefs/cleave/client"
)

// EtcdStore is the Store of an etcd cluster, through etcd's v3 client: a
// file is one key (its path) holding the file's bytes. Puts are etcd's
// durable puts; Gets are linearizable (etcd's default) unless the run asked
// for stale reads, which become serializable gets. etcd has no
// directories, appends or streams: MkdirAll does nothing, and the append
// and stream workloads are not supported.
type EtcdStore struct {
	C     *clientv3.Client
	stale bool
}

var (
	_ Store      = (*EtcdStore)(nil)
	_ ErrorCoder = (*EtcdStore)(nil)
)

// ErrNotFound is returned by EtcdStore for a key that does not exist.
var ErrNotFound = errors.New("not found")

// NewEtcdStore dials the etcd cluster at endpoints (HOST:PORT each, plain
// HTTP) and checks that it answers within dialTimeout. stale makes gets
// serializable (served by any member, possibly stale).
func NewEtcdStore(ctx context.Context, endpoints []string, dialTimeout time.Duration, stale bool) (*EtcdStore, error) {
	if len(endpoints) == 0 || endpoints[0] == "" {
		return nil, fmt.Errorf("etcd: no endpoints")
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Context:     ctx,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	// clientv3.New does not wait for a connection: ask once, so that an
	// unreachable cluster fails here and not as errors of every operation.
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := c.Get(pctx, "/", clientv3.WithSerializable(), clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s: not answering: %w", strings.Join(endpoints, ","), err)
	}
	return &EtcdStore{C: c, stale: stale}, nil
}

// Close closes the client.
func (s *EtcdStore) Close() error { return s.C.Close() }

func (s *EtcdStore) readOpts(opts ...clientv3.OpOption) []clientv3.OpOption {
	if s.stale {
		opts = append(opts, clientv3.WithSerializable())
	}
	return opts
}

// Put writes data under key path.
func (s *EtcdStore) Put(ctx context.Context, path string, data []byte) error {
	_, err := s.C.Put(ctx, path, string(data))
	return err
}

// Get reads key path; ErrNotFound if it does not exist.
func (s *EtcdStore) Get(ctx context.Context, path string) ([]byte, error) {
	r, err := s.C.Get(ctx, path, s.readOpts()...)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("get %s: %w", path, ErrNotFound)
	}
	return r.Kvs[0].Value, nil
}

// List counts the keys under path + "/" (at any depth: etcd has no
// directories).
func (s *EtcdStore) List(ctx context.Context, path string) (int, error) {
	r, err := s.C.Get(ctx, path+"/", s.readOpts(clientv3.WithPrefix(), clientv3.WithCountOnly())...)
	if err != nil {
		return 0, err
	}
	return int(r.Count), nil
}

// Stat checks that key path exists, without reading its value.
func (s *EtcdStore) Stat(ctx context.Context, path string) error {
	r, err := s.C.Get(ctx, path, s.readOpts(clientv3.WithCountOnly())...)
	if err != nil {
		return err
	}
	if r.Count == 0 {
		return fmt.Errorf("stat %s: %w", path, ErrNotFound)
	}
	return nil
}

// MkdirAll does nothing: etcd keys need no parents.
func (s *EtcdStore) MkdirAll(context.Context, string) error { return nil }

// ErrorCode names err by its gRPC status code (Unavailable,
// DeadlineExceeded, ...), NotFound for a missing key, Timeout for a
// deadline the loadgen set, and by cleave's codes for the loadgen's own
// errors.
func (s *EtcdStore) ErrorCode(err error) string {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code.String()
	case errors.Is(err, ErrNotFound):
		return "NotFound"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "Timeout"
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		return st.Code().String()
	}
	return "Unknown"
}
