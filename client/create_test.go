package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// Create returns a writer whose Close makes the whole file visible; a
// doomed file fails without streaming.
func TestCreate(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	dir := root(t, "c1", "create")
	w, err := c.Create(ctx, dir+"/f", client.Parents())
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: streamed
	if _, err := io.Copy(w, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := c.Download(ctx, dir+"/f", &got); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("Download after Create: %v, equal=%v", err, bytes.Equal(got.Bytes(), want))
	}
	w, err = c.Create(ctx, dir+"/missing/f")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := io.Copy(w, bytes.NewReader(want))
	if err := errors.Join(werr, w.Close()); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Create under a missing parent: %v, want ErrNotFound", err)
	}
}

// ListAll yields every entry of a directory across pages, and stops when
// the loop breaks.
func TestListAll(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	dir := root(t, "c2", "listall")
	for i := range 5 {
		if _, err := c.Put(ctx, fmt.Sprintf("%s/f%d", dir, i), nil, client.Parents()); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for st, err := range c.ListAll(ctx, dir) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, st.Name)
	}
	if fmt.Sprint(names) != "[f0 f1 f2 f3 f4]" {
		t.Fatalf("ListAll = %v", names)
	}
	n := 0
	for range c.ListAll(ctx, dir) {
		if n++; n == 2 {
			break
		}
	}
	for _, err := range c.ListAll(ctx, dir+"/nope") {
		if !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("ListAll of a missing dir: %v, want ErrNotFound", err)
		}
	}
}

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

// WithDialTimeout caps dialling one router (connect + HELLO): a router that
// accepts and never answers is given up on after it, not after the default.
func TestWithDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = client.Dial(ctx, []string{ln.Addr().String()}, client.WithDialTimeout(100*time.Millisecond))
	// The default cap is 3s; 2.5s leaves a shared machine 25 times the cap.
	if err == nil || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("Dial of a silent router with WithDialTimeout(100ms): %v after %v", err, time.Since(start))
	}
}
