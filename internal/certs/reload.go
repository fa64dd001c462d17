package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// checkEvery is the least time between two looks at the files' mtimes.
const checkEvery = time.Second

// stamp identifies one version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

// Reloader holds a certificate, its key and a CA pool loaded from files,
// and re-reads them when a file's modification time or size changes
// (looked at most once a second, on a handshake). A change that does not
// load (a half-written pair, an expired certificate) keeps the last good
// material and is reported by Err until the files load again. Safe for
// concurrent use.
type Reloader struct {
	certFile, keyFile, caFile string

	mu      sync.Mutex
	checked time.Time
	stamps  [3]stamp
	cert    *tls.Certificate
	pool    *x509.CertPool
	err     error
}

// Load reads certFile, keyFile and caFile (PEM) and returns a Reloader over
// them. The error names the file at fault: missing, not PEM, key not
// matching the certificate, certificate expired or not yet valid, no
// certificate in the CA file.
func Load(certFile, keyFile, caFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, caFile: caFile}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	if err := r.load(st); err != nil {
		return nil, err
	}
	r.checked = time.Now()
	return r, nil
}

// Err returns why the files last failed to reload, nil if the material in
// use is what the files hold.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ServerConfig returns a TLS 1.3 server configuration presenting the
// current certificate and verifying client certificates (as clientAuth
// says) against the current CA.
func (r *Reloader) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := r.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   clientAuth,
				ClientCAs:    pool,
			}, nil
		},
	}
}

// ClientConfig returns a TLS 1.3 client configuration that presents the
// certificate current at each handshake and trusts the CA current when
// ClientConfig is called; the server's name is checked as usual (tls.Dial
// takes it from the address). It is cheap: call it for each connection to
// follow CA changes too.
func (r *Reloader) ClientConfig() *tls.Config {
	_, pool := r.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := r.current()
			return cert, nil
		},
	}
}

// Reissue replaces the certificate and key files r reads with a new pair
// for name, signed by the CA in caDir (certs.Reissue), and loads it at
// once: the next handshake presents it.
func (r *Reloader) Reissue(caDir, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := Reissue(caDir, r.certFile, r.keyFile, name); err != nil {
		return err
	}
	st, err := r.stat()
	if err == nil {
		err = r.load(st)
	}
	r.checked, r.err = time.Now(), err
	return err
}

// CommonName returns the common name of the certificate in use.
func (r *Reloader) CommonName() string {
	cert, _ := r.current()
	if cert == nil || cert.Leaf == nil {
		return ""
	}
	return cert.Leaf.Subject.CommonName
}

// current returns the material in use, reloading first if a file changed
// and the last look is checkEvery old.
func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= checkEvery {
		r.checked = time.Now()
		st, err := r.stat()
		switch {
		case err != nil:
			r.err = err
		case st != r.stamps:
			r.err = r.load(st)
		}
	}
	return r.cert, r.pool
}

// stat returns the three files' stamps.
func (r *Reloader) stat() ([3]stamp, error) {
	var st [3]stamp
	for i, p := range []string{r.certFile, r.keyFile, r.caFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, fmt.Errorf("certs: %w", err)
		}
		st[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return st, nil
}

// load reads the files; on success it installs them with their stamps st.
// Called with mu held (or before r is shared).
func (r *Reloader) load(st [3]stamp) error {
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if _, err := pemBlock(r.caFile, "CA"); err != nil {
		return err
	}
	caPEM, _ := os.ReadFile(r.caFile)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("certs: CA %s: no PEM certificate in it", r.caFile)
	}
	r.cert, r.pool, r.stamps = cert, pool, st
	return nil
}

// loadPair reads a certificate and its key, checking that they match and
// that the certificate is valid now.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	leaf, err := ReadCert(certFile)
	if err != nil {
		return nil, err
	}
	if _, err := pemBlock(keyFile, "key"); err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: key %s does not match certificate %s: %v", keyFile, certFile, err)
	}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certs: certificate %s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certs: certificate %s is not valid until %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return &cert, nil
}

// ClientTLS returns a TLS 1.3 client configuration for a command-line
// client: it trusts the CA in caFile and, when certFile and keyFile are
// both given, presents that certificate (for a server that asks for
// one). The error names the file at fault, or the flag missing its pair.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, fmt.Errorf("certs: a CA file is needed to verify the server")
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("certs: a client certificate needs both its certificate and key files (got %q and %q)", certFile, keyFile)
	}
	if _, err := pemBlock(caFile, "CA"); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("certs: %s: no certificate in the CA file", caFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if certFile != "" {
		cert, err := loadPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}
