package loadgen

import (
	"fmt"
	"math/rand/v2"
)

// zipfS is the skew of the zipf distribution: 1.1, close to YCSB's 0.99
// (rand.Zipf needs s > 1). With it about a fifth of the draws hit the
// hottest file when there are 1,000.
const zipfS = 1.1

// Keys chooses file indexes in [0, N) with a distribution. Not safe for
// concurrent use: each worker has its own.
type Keys struct {
	n    int64
	r    *rand.Rand
	zipf *rand.Zipf
}

// NewKeys returns a chooser of n >= 1 indexes drawn with dist from r.
func NewKeys(dist Dist, n int64, r *rand.Rand) *Keys {
	if n < 1 {
		n = 1
	}
	k := &Keys{n: n, r: r}
	if dist == Zipf && n > 1 {
		k.zipf = rand.NewZipf(r, zipfS, 1, uint64(n-1))
	}
	return k
}

// Next returns the next index.
func (k *Keys) Next() int64 {
	if k.zipf != nil {
		return int64(k.zipf.Uint64())
	}
	return k.r.Int64N(k.n)
}

// Namer maps file indexes to paths. File i lives in root i mod Roots, so
// consecutive (and, under zipf, the hottest) files spread over the roots
// and so over the clusters.
type Namer struct {
	Prefix string // root directory names are Prefix-000, Prefix-001, ...
	Roots  int64
}

// Root returns the path of root directory r.
func (n Namer) Root(r int64) string { return fmt.Sprintf("/%s-%03d", n.Prefix, r) }

// File returns the path of file i.
func (n Namer) File(i int64) string {
	return fmt.Sprintf("/%s-%03d/f%08d", n.Prefix, i%n.Roots, i/n.Roots)
}
