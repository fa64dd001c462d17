package loadgen

import (
	"context"
	"io"

	"github.com/cleavefs/cleave/client"
)

// CleaveStore is the Store of a cleave deployment, through the SDK. It has
// every workload: appends and streams too.
type CleaveStore struct {
	C *client.Client
}

// NewCleaveStore returns the Store driving c.
func NewCleaveStore(c *client.Client) *CleaveStore { return &CleaveStore{C: c} }

var (
	_ Store    = (*CleaveStore)(nil)
	_ Appender = (*CleaveStore)(nil)
	_ Streamer = (*CleaveStore)(nil)
	_ Scanner  = (*CleaveStore)(nil)
	_ Tabler   = (*CleaveStore)(nil)
)

// Table returns the deployment's routing table.
func (s *CleaveStore) Table(ctx context.Context) (*client.RoutingTable, error) {
	return s.C.Table(ctx)
}

// Put writes the whole file.
func (s *CleaveStore) Put(ctx context.Context, path string, data []byte) error {
	_, err := s.C.Put(ctx, path, data)
	return err
}

// Get reads the whole file.
func (s *CleaveStore) Get(ctx context.Context, path string) ([]byte, error) {
	return s.C.Get(ctx, path)
}

// List lists directory path.
func (s *CleaveStore) List(ctx context.Context, path string) (int, error) {
	ents, err := s.C.List(ctx, path)
	return len(ents), err
}

// Stat stats path.
func (s *CleaveStore) Stat(ctx context.Context, path string) error {
	_, err := s.C.Stat(ctx, path)
	return err
}

// MkdirAll creates directory path and its parents.
func (s *CleaveStore) MkdirAll(ctx context.Context, path string) error {
	return s.C.MkdirAll(ctx, path)
}

// Append appends data to path.
func (s *CleaveStore) Append(ctx context.Context, path string, data []byte) error {
	_, err := s.C.Append(ctx, path, data)
	return err
}

// Upload streams r into path.
func (s *CleaveStore) Upload(ctx context.Context, path string, r io.Reader) error {
	_, err := s.C.Upload(ctx, path, r)
	return err
}

// Download streams path into w.
func (s *CleaveStore) Download(ctx context.Context, path string, w io.Writer) error {
	_, err := s.C.Download(ctx, path, w)
	return err
}

// Scan lists the first limit entries of directory dir: one page.
func (s *CleaveStore) Scan(ctx context.Context, dir string, limit int) (int, error) {
	ents, _, err := s.C.ListPage(ctx, dir, limit, "")
	return len(ents), err
}
