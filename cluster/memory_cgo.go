//go:build cgo && linux

package cluster

/*
#include <malloc.h>

static void cleave_malloc_arenas(int n) {
#ifdef M_ARENA_MAX
	mallopt(M_ARENA_MAX, n);
#endif
}

static void cleave_malloc_mmap_threshold(int n) {
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, n);
#endif
}
*/
import "C"

import "os"

// tuneMalloc makes glibc map blocks of 128 KiB or more on their own (a
// fixed threshold also turns off glibc's dynamic one, which otherwise
// rises to 1 MiB after the first free of a mapped block, after which
// Pebble's cache blocks fill arenas that never shrink) and use at most two
// arenas. MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ in the environment
// win.
func tuneMalloc() {
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		C.cleave_malloc_arenas(2)
	}
	if os.Getenv("MALLOC_MMAP_THRESHOLD_") == "" {
		C.cleave_malloc_mmap_threshold(128 << 10)
	}
}
