package main

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cleavefs/cleave/internal/fspath"
)

// quoteName returns a stored name or path ready for a terminal: as it is
// when it has no control character and is valid UTF-8, otherwise quoted
// and escaped as strconv.Quote does ("x\x1b[2J"), so that a name stored
// before control characters were refused cannot move the cursor, forge a
// table row or send an escape sequence to the terminal.
func quoteName(s string) string {
	if !needsQuote(s) {
		return s
	}
	return strconv.Quote(s)
}

// needsQuote reports whether s has a control character or is not UTF-8.
func needsQuote(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsFunc(s, fspath.IsControl)
}

// escapeControl escapes each control character and invalid byte of s in
// place (as strconv.Quote would) and leaves the rest, quotes included, as
// it is: for free text that may embed a stored name, such as an error
// message.
func escapeControl(s string) string {
	if !needsQuote(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			q := strconv.Quote(s[i : i+1])
			b.WriteString(q[1 : len(q)-1])
		case fspath.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
