package loadgen

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxHistLines bounds a size histogram file: more lines are a wrong file.
const maxHistLines = 100_000

// readSizeHist reads a size histogram file: one bucket a line, "SIZE
// WEIGHT" (that size) or "MIN-MAX WEIGHT" (uniform in the range), weights
// non-negative numbers not all 0; blank lines and # comments are skipped.
// Errors name the file and line.
func readSizeHist(path string) (SizeDist, error) {
	if path == "" {
		return SizeDist{}, fmt.Errorf("size \"hist:\": want hist:FILE, a file of \"SIZE WEIGHT\" lines")
	}
	f, err := os.Open(path)
	if err != nil {
		return SizeDist{}, fmt.Errorf("size histogram: %w", err)
	}
	defer f.Close()
	d := SizeDist{kind: "hist", spec: "hist:" + path, Min: maxSize}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line > maxHistLines {
			return SizeDist{}, fmt.Errorf("size histogram %s: more than %d lines", path, maxHistLines)
		}
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		b, err := parseBucket(fields)
		if err != nil {
			return SizeDist{}, fmt.Errorf("size histogram %s line %d: %w", path, line, err)
		}
		d.total += b.w
		b.cum = d.total
		d.buckets = append(d.buckets, b)
		d.Min, d.Max = min(d.Min, b.lo), max(d.Max, b.hi)
	}
	if err := sc.Err(); err != nil {
		return SizeDist{}, fmt.Errorf("size histogram %s line %d: %w", path, line+1, err)
	}
	if d.total <= 0 {
		return SizeDist{}, fmt.Errorf("size histogram %s: no bucket with a weight above 0", path)
	}
	return d, nil
}

// parseBucket parses the fields of one histogram line.
func parseBucket(fields []string) (sizeBucket, error) {
	if len(fields) != 2 {
		return sizeBucket{}, fmt.Errorf("%d fields %q; want SIZE WEIGHT or MIN-MAX WEIGHT", len(fields), strings.Join(fields, " "))
	}
	r, err := parseRange(fields[0])
	if err != nil {
		return sizeBucket{}, err
	}
	w, err := strconv.ParseFloat(fields[1], 64)
	if err != nil || !(w >= 0) || w > 1e15 {
		return sizeBucket{}, fmt.Errorf("weight %q: want a number >= 0", fields[1])
	}
	return sizeBucket{lo: r.Min, hi: r.Max, w: w}, nil
}
