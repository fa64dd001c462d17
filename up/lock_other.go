//go:build !unix

package up

// lockDir does nothing where flock is unavailable.
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }
