package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// topOfRing is how a range end of 2^64 (End 0) is written in text.
const topOfRing = "18446744073709551616"

// ParseRange parses "START-END", two decimal uint64s, into a range. END may
// be 18446744073709551616 (2^64), the top of the ring, stored as End 0.
func ParseRange(s string) (Range, error) {
	start, end, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("range %q: want START-END", s)
	}
	var r Range
	var err error
	if r.Start, err = strconv.ParseUint(start, 10, 64); err != nil {
		return Range{}, fmt.Errorf("range %q: start %q must be a number below 2^64", s, start)
	}
	if end == topOfRing {
		r.End = 0
		return r, nil
	}
	if r.End, err = strconv.ParseUint(end, 10, 64); err != nil {
		return Range{}, fmt.Errorf("range %q: end %q must be a number up to 2^64 (%s)", s, end, topOfRing)
	}
	if r.End <= r.Start {
		return Range{}, fmt.Errorf("range %q: end must be greater than start (write %s for the top of the ring)", s, topOfRing)
	}
	return r, nil
}

// FormatRange writes r the way ParseRange reads it.
func FormatRange(r Range) string {
	end := strconv.FormatUint(r.End, 10)
	if r.End == 0 {
		end = topOfRing
	}
	return strconv.FormatUint(r.Start, 10) + "-" + end
}
