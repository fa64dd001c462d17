// Package bytesize reads and writes byte sizes such as "64MiB", "1GB" or
// "4096", the one meaning every size flag of cleave and cleave-loadgen
// shares.
//
// Accepted forms (Parse):
//
//   - a whole number of bytes: "0", "4096", optionally followed by "B";
//   - a number with a decimal unit, powers of 1000: KB, MB, GB, TB
//     ("1GB" is 1,000,000,000 bytes);
//   - a number with a binary unit, powers of 1024: KiB, MiB, GiB, TiB,
//     or the one-letter K, M, G, T ("64MiB" and "64M" are 67,108,864 bytes,
//     as in dd).
//
// Units are case-insensitive ("kb" is KB, "kib" is KiB); a space may sit
// between the number and the unit; surrounding spaces are ignored. The
// number may have a decimal fraction ("1.5KiB") if the result is a whole
// number of bytes. Negative numbers, exponents and results above
// math.MaxInt64 are refused. Errors name the input and list these forms.
//
// The package has no state; its functions are safe for concurrent use.
package bytesize
