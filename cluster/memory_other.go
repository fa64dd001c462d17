//go:build !cgo || !linux

package cluster

// tuneMalloc does nothing without cgo on Linux: Pebble then allocates its
// cache and memtables on the Go heap, under the soft limit.
func tuneMalloc() {}
