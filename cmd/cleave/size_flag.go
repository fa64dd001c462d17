package main

import (
	"github.com/spf13/pflag"

	"github.com/cleavefs/cleave/internal/bytesize"
)

// sizeValue is a byte-count flag read with bytesize.Parse, the one syntax
// of every size flag ("4096", "64KiB", "1GB").
type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil || *v.p == 0 {
		return "0" // what pflag reads as "no default worth printing"
	}
	return bytesize.Format(*v.p)
}

func (v sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (sizeValue) Type() string { return "size" }

// sizeFlag adds a byte-count flag to f.
func sizeFlag(f *pflag.FlagSet, p *int64, name, usage string) {
	f.Var(sizeValue{p}, name, usage)
}
