package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
	C     *clientv3.Client   // the first connection
	conns []*clientv3.Client // every connection; operations take turns
	next  atomic.Uint64
	stale bool
}

var (
	_ Store      = (*EtcdStore)(nil)
	_ Scanner    = (*EtcdStore)(nil)
	_ ErrorCoder = (*EtcdStore)(nil)
)

// ErrNotFound is returned by EtcdStore for a key that does not exist.
var ErrNotFound = errors.New("not found")

// NewEtcdStore dials the etcd cluster at endpoints (HOST:PORT each, plain
// HTTP) with conns client connections (at least 1) and checks that it
// answers within dialTimeout. Operations take turns over the connections.
// stale makes gets serializable (served by any member, possibly stale).
func NewEtcdStore(ctx context.Context, endpoints []string, conns int, dialTimeout time.Duration, stale bool) (*EtcdStore, error) {
	if len(endpoints) == 0 || endpoints[0] == "" {
		return nil, fmt.Errorf("etcd: no endpoints")
	}
	s := &EtcdStore{stale: stale}
	for range max(conns, 1) {
		c, err := dialEtcd(ctx, endpoints, dialTimeout)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.conns = append(s.conns, c)
	}
	s.C = s.conns[0]
	return s, nil
}

// dialEtcd opens one client connection and checks that the cluster answers.
func dialEtcd(ctx context.Context, endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
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
	return c, nil
}

// Close closes every connection.
func (s *EtcdStore) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// conn returns the connection whose turn it is.
func (s *EtcdStore) conn() *clientv3.Client {
	return s.conns[(s.next.Add(1)-1)%uint64(len(s.conns))]
}

func (s *EtcdStore) readOpts(opts ...clientv3.OpOption) []clientv3.OpOption {
	if s.stale {
		opts = append(opts, clientv3.WithSerializable())
	}
	return opts
}

// Put writes data under key path.
func (s *EtcdStore) Put(ctx context.Context, path string, data []byte) error {
	_, err := s.conn().Put(ctx, path, string(data))
	return err
}

// Get reads key path; ErrNotFound if it does not exist.
func (s *EtcdStore) Get(ctx context.Context, path string) ([]byte, error) {
	r, err := s.conn().Get(ctx, path, s.readOpts()...)
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
	r, err := s.conn().Get(ctx, path+"/", s.readOpts(clientv3.WithPrefix(), clientv3.WithCountOnly())...)
	if err != nil {
		return 0, err
	}
	return int(r.Count), nil
}

// Scan reads up to limit keys under path/ from the first, values included
// (as a YCSB scan returns its records).
func (s *EtcdStore) Scan(ctx context.Context, path string, limit int) (int, error) {
	r, err := s.conn().Get(ctx, path+"/", s.readOpts(clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))...)
	if err != nil {
		return 0, err
	}
	return len(r.Kvs), nil
}

// Stat checks that key path exists, without reading its value.
func (s *EtcdStore) Stat(ctx context.Context, path string) error {
	r, err := s.conn().Get(ctx, path, s.readOpts(clientv3.WithCountOnly())...)
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
