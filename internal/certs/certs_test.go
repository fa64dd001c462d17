package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// verifyChain checks that outDir/name.crt chains to caDir's CA for usage
// and host.
func verifyChain(t *testing.T, caDir, outDir, name, host string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	ca, err := ReadCert(filepath.Join(caDir, CACert))
	must(t, err)
	leaf, err := ReadCert(filepath.Join(outDir, name+".crt"))
	must(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("%s does not verify for %s: %v", name, host, err)
	}
	return leaf
}

func TestIssueChainAndIdentity(t *testing.T) {
	dir := t.TempDir()
	must(t, NewCA(dir, "cleave test CA", time.Hour))
	if fi, err := os.Stat(filepath.Join(dir, CAKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v, want mode 0600", fi.Mode(), err)
	}
	if err := NewCA(dir, "again", time.Hour); err == nil || !strings.Contains(err.Error(), CAKey) {
		t.Fatalf("second NewCA in one dir: %v, want a refusal naming ca.key", err)
	}
	must(t, Issue(dir, dir, "node-7", []string{"127.0.0.1", "localhost"}, Both, time.Hour))
	for _, host := range []string{"127.0.0.1", "localhost"} {
		verifyChain(t, dir, dir, "node-7", host, x509.ExtKeyUsageServerAuth)
	}
	leaf := verifyChain(t, dir, dir, "node-7", "", x509.ExtKeyUsageClientAuth)
	if role, id, err := Identity(leaf); role != "node" || id != "7" || err != nil {
		t.Fatalf("Identity = %q %q %v, want node 7", role, id, err)
	}
	must(t, Issue(dir, dir, "router-r1", nil, Client, time.Hour))
	leaf = verifyChain(t, dir, dir, "router-r1", "", x509.ExtKeyUsageClientAuth)
	if role, id, _ := Identity(leaf); role != "router" || id != "r1" {
		t.Fatalf("Identity = %q %q, want router r1", role, id)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(t, dir), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("a client-only certificate verifies as a server")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "router-r1.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}

	for _, c := range []struct{ name, want string }{
		{"", "empty"}, {"../x", "name"}, {"a b", "name"},
	} {
		if err := Issue(dir, dir, c.name, nil, Both, time.Hour); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Issue(%q): %v, want an error about %q", c.name, err, c.want)
		}
	}
	if err := Issue(t.TempDir(), dir, "node-1", nil, Both, time.Hour); err == nil || !strings.Contains(err.Error(), CACert) {
		t.Errorf("Issue without a CA: %v", err)
	}
	if _, _, err := Identity(&x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}}); err == nil {
		t.Error("Identity of CN stranger: no error")
	}
}

func pool(t *testing.T, dir string) *x509.CertPool {
	ca, err := ReadCert(filepath.Join(dir, CACert))
	must(t, err)
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p
}

// serve accepts TLS connections on 127.0.0.1 until the test ends and
// completes their handshakes.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("x"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake dials addr and returns the server's leaf certificate.
func handshake(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// With TLS 1.3 a refused client certificate shows on the first read.
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return nil, err
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		return nil, errors.New("not TLS 1.3")
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestMutualTLSAndReload(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	must(t, NewCA(dir, "cluster CA", time.Hour))
	must(t, NewCA(other, "other CA", time.Hour))
	must(t, Issue(dir, dir, "node-1", []string{"127.0.0.1"}, Server, time.Hour))
	must(t, Issue(dir, dir, "router-r1", nil, Client, time.Hour))
	must(t, Issue(other, other, "router-r1", nil, Client, time.Hour))

	srv, err := Load(filepath.Join(dir, "node-1.crt"), filepath.Join(dir, "node-1.key"), filepath.Join(dir, CACert))
	must(t, err)
	addr := serve(t, srv.ServerConfig(tls.RequireAndVerifyClientCert))
	cli, err := Load(filepath.Join(dir, "router-r1.crt"), filepath.Join(dir, "router-r1.key"), filepath.Join(dir, CACert))
	must(t, err)
	leaf, err := handshake(addr, cli.ClientConfig())
	must(t, err)
	if role, id, _ := Identity(leaf); role != "node" || id != "1" {
		t.Fatalf("server identity %s %s", role, id)
	}

	stranger, err := Load(filepath.Join(other, "router-r1.crt"), filepath.Join(other, "router-r1.key"), filepath.Join(dir, CACert))
	must(t, err)
	if _, err := handshake(addr, stranger.ClientConfig()); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	foreign, err := Load(filepath.Join(other, "router-r1.crt"), filepath.Join(other, "router-r1.key"), filepath.Join(other, CACert))
	must(t, err)
	if _, err := handshake(addr, foreign.ClientConfig()); err == nil {
		t.Fatal("a client trusting another CA accepted the server")
	}
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 client without a certificate was accepted")
	}

	// The server's certificate is re-issued in place under a new name
	// (same files): new handshakes present it without a restart.
	tmp := t.TempDir()
	must(t, Issue(dir, tmp, "node-2", []string{"127.0.0.1"}, Server, time.Hour))
	must(t, os.Rename(filepath.Join(tmp, "node-2.key"), filepath.Join(dir, "node-1.key")))
	must(t, os.Rename(filepath.Join(tmp, "node-2.crt"), filepath.Join(dir, "node-1.crt")))
	eventually.Holds(t, 10*time.Second, "the server to present the re-issued certificate", func() error {
		leaf, err := handshake(addr, cli.ClientConfig())
		if err != nil {
			return err
		}
		_, id, _ := Identity(leaf)
		return eventually.True(id == "2", "server still presents node-%s", id)
	})

	// A key file that no longer loads keeps the last good pair in use and
	// is reported, naming the file.
	must(t, os.WriteFile(filepath.Join(dir, "node-1.key"), []byte("half written"), 0o600))
	eventually.Holds(t, 10*time.Second, "the failed reload to be reported", func() error {
		if _, err := handshake(addr, cli.ClientConfig()); err != nil {
			return err
		}
		err := srv.Err()
		return eventually.True(err != nil && strings.Contains(err.Error(), "node-1.key"), "Err() = %v", err)
	})
}

// writeExpired writes a certificate signed by dir's CA that expired an
// hour ago, and its key, as dir/old.crt and dir/old.key.
func writeExpired(t *testing.T, dir string) {
	t.Helper()
	ca, err := ReadCert(filepath.Join(dir, CACert))
	must(t, err)
	caKey, err := readKey(filepath.Join(dir, CAKey))
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "node-9"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "old.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "old.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600))
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	must(t, NewCA(dir, "CA", time.Hour))
	must(t, Issue(dir, dir, "node-1", nil, Both, time.Hour))
	must(t, Issue(dir, dir, "node-2", nil, Both, time.Hour))
	writeExpired(t, dir)
	junk := filepath.Join(dir, "junk")
	must(t, os.WriteFile(junk, []byte("hello"), 0o600))
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, c := range []struct {
		name            string
		cert, key, ca   string
		wantFile, wantS string
	}{
		{"missing cert", p("none.crt"), p("node-1.key"), p(CACert), p("none.crt"), "no such file"},
		{"cert not PEM", junk, p("node-1.key"), p(CACert), junk, "PEM"},
		{"key not PEM", p("node-1.crt"), junk, p(CACert), junk, "PEM"},
		{"ca not PEM", p("node-1.crt"), p("node-1.key"), junk, junk, "PEM"},
		{"key does not match", p("node-1.crt"), p("node-2.key"), p(CACert), p("node-2.key"), "does not match"},
		{"expired", p("old.crt"), p("old.key"), p(CACert), p("old.crt"), "expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.cert, c.key, c.ca)
			if err == nil || !strings.Contains(err.Error(), c.wantFile) || !strings.Contains(err.Error(), c.wantS) {
				t.Fatalf("got %v, want an error naming %s and %q", err, c.wantFile, c.wantS)
			}
		})
	}
}

// ClientTLS trusts the CA file, presents a certificate only when both
// files are given, and names what is missing or wrong.
func TestClientTLS(t *testing.T) {
	ca, out := t.TempDir(), t.TempDir()
	must(t, NewCA(ca, "test CA", time.Hour))
	must(t, Issue(ca, out, "router-r1", []string{"127.0.0.1"}, Server, time.Hour))
	must(t, Issue(ca, out, "alice", nil, Client, time.Hour))
	srv, err := Load(filepath.Join(out, "router-r1.crt"), filepath.Join(out, "router-r1.key"), filepath.Join(ca, CACert))
	must(t, err)
	addr := serve(t, srv.ServerConfig(tls.VerifyClientCertIfGiven))

	cfg, err := ClientTLS(filepath.Join(ca, CACert), "", "")
	must(t, err)
	if _, err := handshake(addr, cfg); err != nil {
		t.Fatalf("CA only: %v", err)
	}
	cfg, err = ClientTLS(filepath.Join(ca, CACert), filepath.Join(out, "alice.crt"), filepath.Join(out, "alice.key"))
	must(t, err)
	if len(cfg.Certificates) != 1 {
		t.Fatal("client certificate not loaded")
	}
	if _, err := handshake(addr, cfg); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	for _, tc := range []struct{ ca, cert, key, want string }{
		{"", "", "", "CA file is needed"},
		{filepath.Join(ca, CACert), filepath.Join(out, "alice.crt"), "", "both its certificate and key"},
		{filepath.Join(ca, "missing.crt"), "", "", "missing.crt"},
		{filepath.Join(out, "alice.key"), "", "", "alice.key"},
	} {
		if _, err := ClientTLS(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ClientTLS(%q, %q, %q) = %v, want an error naming %q", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
}
