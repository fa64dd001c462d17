package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DefaultTheta is YCSB's default zipfian skew (zipfian_constant 0.99).
const DefaultTheta = 0.99

// Zipfian draws popularity ranks in [0, n) with P(rank k) proportional to
// 1/(k+1)^theta: YCSB's ZipfianGenerator, the algorithm of Gray et al.,
// "Quickly generating billion-record synthetic databases" (SIGMOD 1994).
// The item count may grow between draws (the latest distribution does);
// zeta is then extended, not recomputed. Not safe for concurrent use.
type Zipfian struct {
	r     *rand.Rand
	theta float64
	alpha float64 // 1 / (1 - theta)
	zeta2 float64 // zeta(2, theta)
	n     int64   // item count zetan and eta are for
	zetan float64 // zeta(n, theta)
	eta   float64
}

// NewZipfian returns a generator over n >= 1 items with skew theta in
// (0, 1), drawing from r.
func NewZipfian(n int64, theta float64, r *rand.Rand) *Zipfian {
	z := &Zipfian{r: r, theta: theta, alpha: 1 / (1 - theta), zeta2: zeta(2, theta)}
	z.resize(max(n, 1))
	return z
}

// resize makes zetan and eta those of n items.
func (z *Zipfian) resize(n int64) {
	if n > z.n && n-z.n <= zetaExact && z.n > 0 {
		for i := z.n + 1; i <= n; i++ {
			z.zetan += math.Pow(float64(i), -z.theta)
		}
	} else {
		z.zetan = zeta(n, z.theta)
	}
	z.n = n
	z.eta = (1 - math.Pow(2/float64(n), 1-z.theta)) / (1 - z.zeta2/z.zetan)
}

// Next returns a rank in [0, n) for n >= 1 items; rank 0 is the most
// popular.
func (z *Zipfian) Next(n int64) int64 {
	if n != z.n {
		z.resize(max(n, 1))
	}
	u := z.r.Float64()
	uz := u * z.zetan
	switch {
	case uz < 1:
		return 0
	case uz < 1+math.Pow(0.5, z.theta):
		return min(1, z.n-1)
	}
	k := int64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(max(k, 0), z.n-1)
}

// zetaExact is the item count up to which zeta sums every term; above it,
// the Euler–Maclaurin formula adds the tail (relative error below 1e-12),
// so a generator over a billion records starts at once.
const zetaExact = 4096

// zeta returns the sum over i in [1, n] of 1/i^theta.
func zeta(n int64, theta float64) float64 {
	m := min(n, zetaExact)
	s := 0.0
	for i := int64(1); i <= m; i++ {
		s += math.Pow(float64(i), -theta)
	}
	if n == m {
		return s
	}
	// Tail sum over (m, n]: integral + endpoint and first-derivative corrections.
	a, b := float64(m), float64(n)
	s += (math.Pow(b, 1-theta) - math.Pow(a, 1-theta)) / (1 - theta)
	s += (math.Pow(b, -theta) - math.Pow(a, -theta)) / 2
	s += theta / 12 * (math.Pow(a, -theta-1) - math.Pow(b, -theta-1))
	return s
}

// Scramble maps rank to an item in [0, n) with YCSB's FNV-1a 64-bit hash,
// as its ScrambledZipfianGenerator does, so that the popular items are
// scattered over the key space (and so over roots and clusters) instead of
// being the first few. Distinct ranks may share an item; the hot ranks
// rarely do.
func Scramble(rank, n int64) int64 {
	return int64(fnvHash64(uint64(rank)) % uint64(n))
}

// fnvHash64 is YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of v, low
// byte first, made non-negative.
func fnvHash64(v uint64) uint64 {
	h := uint64(0xCBF29CE484222325)
	for range 8 {
		h ^= v & 0xff
		h *= 1099511628211
		v >>= 8
	}
	if int64(h) < 0 {
		h = -h // Java's Math.abs of a long
	}
	return h
}

// Keys chooses file indexes with a distribution. Not safe for concurrent
// use: each worker has its own.
type Keys struct {
	dist Dist
	n    int64
	r    *rand.Rand
	zipf *Zipfian
	upto func() int64 // latest: the current item count
}

// NewKeys returns a chooser of n >= 1 indexes drawn with dist from r;
// theta is the skew of Zipf and Latest. For Latest, upto (if not nil)
// returns the current item count, which may grow: the highest index is the
// most popular, as in YCSB's read-latest workload.
func NewKeys(dist Dist, theta float64, n int64, r *rand.Rand, upto func() int64) *Keys {
	n = max(n, 1)
	k := &Keys{dist: dist, n: n, r: r, upto: upto}
	if dist == Zipf || dist == Latest {
		k.zipf = NewZipfian(n, theta, r)
	}
	return k
}

// Next returns the next index.
func (k *Keys) Next() int64 {
	switch k.dist {
	case Zipf:
		return Scramble(k.zipf.Next(k.n), k.n)
	case Latest:
		n := k.n
		if k.upto != nil {
			n = max(k.upto(), 1)
		}
		return n - 1 - k.zipf.Next(n)
	}
	return k.r.Int64N(k.n)
}

// Namer maps file indexes to paths. File i lives in root i mod Roots, so
// consecutive (and, under zipf, the hottest) files spread over the roots
// and so over the clusters.
type Namer struct {
	Prefix string // root directory names are Prefix-000, Prefix-001, ...
	Roots  int64
	// Dirs, if not nil, are the root directory paths instead (Roots is
	// then len(Dirs)): a pinned client's roots, all owned by one cluster.
	Dirs []string
}

// Root returns the path of root directory r.
func (n Namer) Root(r int64) string {
	if n.Dirs != nil {
		return n.Dirs[r]
	}
	return fmt.Sprintf("/%s-%03d", n.Prefix, r)
}

// File returns the path of file i.
func (n Namer) File(i int64) string {
	return fmt.Sprintf("%s/f%08d", n.Root(i%n.Roots), i/n.Roots)
}
