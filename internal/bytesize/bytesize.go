package bytesize

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Forms lists the accepted forms, for flag help and error messages.
const Forms = "a number of bytes with an optional unit: B; KB, MB, GB, TB (powers of 1000); KiB, MiB, GiB, TiB or K, M, G, T (powers of 1024)"

// units maps a lower-cased unit to its multiplier.
var units = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// Parse reads a byte size in one of the forms the package doc lists, e.g.
// "64MiB", "1GB", "1.5KiB" or "4096".
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		if t == "" {
			return 0, fmt.Errorf("%q is not a size: empty; want %s, e.g. 64MiB", s, Forms)
		}
		return 0, fmt.Errorf("%q is not a size: no number; want %s, e.g. 64MiB", s, Forms)
	}
	mult, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q is not a size: unknown unit %q; want %s", s, unit, Forms)
	}
	whole, frac, _ := strings.Cut(num, ".")
	if strings.Contains(frac, ".") || whole == "" && frac == "" {
		return 0, fmt.Errorf("%q is not a size: %q is not a number; want %s", s, num, Forms)
	}
	// Exact arithmetic: (whole.frac digits) * mult / 10^len(frac).
	v, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return 0, fmt.Errorf("%q is not a size: %q is not a number; want %s", s, num, Forms)
	}
	v.Mul(v, big.NewInt(mult))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(v, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("%q is not a size: not a whole number of bytes", s)
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%q is not a size: above the largest, %d bytes", s, int64(math.MaxInt64))
	}
	return q.Int64(), nil
}

// Format writes n the short way, exactly: in the largest binary unit that
// divides it ("1KiB", "64MiB", "2GiB", "1TiB"), else in bytes ("1500B").
// Parse reads it back to n.
func Format(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
