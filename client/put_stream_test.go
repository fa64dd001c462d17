package client_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cleavefs/cleave/client"
)

// Put of more than the frame limit (8 MiB) streams instead of answering
// TOO_LARGE, and the file reads back whole.
func TestPutAboveFrameLimit(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	p := root(t, "c1", "big") + "/f"
	data := make([]byte, 9<<20+123)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	st, err := c.Put(ctx, p, data, client.Parents())
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", len(data), err)
	}
	if st.Size != int64(len(data)) {
		t.Fatalf("size %d, want %d", st.Size, len(data))
	}
	var got bytes.Buffer
	if _, err := c.Download(ctx, p, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("Download: %v, %d bytes equal=%v", err, got.Len(), bytes.Equal(got.Bytes(), data))
	}
	if _, err := c.Put(ctx, p, data, client.IfVersion(st.Version+100)); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("Put with a wrong IfVersion: %v, want CONFLICT", err)
	}
}
