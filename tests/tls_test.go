package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/syncbuf"
	"github.com/cleavefs/cleave/up"
)

// TestTLSUp runs `cleave up --tls`: a plaintext client and a client whose
// certificate comes from another CA are refused; a client trusting the
// deployment's CA (with the operator's certificate and the root token)
// writes and reads; and a capture of every node's peer port while a
// 64 KiB file is written holds none of the file's bytes.
func TestTLSUp(t *testing.T) {
	skipInShortMode(t, "a cleave up --tls deployment")
	d := ownDeployment(t, "--tls", "--clusters", "1", "--routers", "1")
	ca := filepath.Join(d.dir, up.CertsDir, certs.CACert)
	if !strings.Contains(d.stdout.String(), "CLEAVE_CACERT="+ca) {
		t.Errorf("the banner does not say how to trust the CA:\n%s", d.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// (a) plaintext
	_, err := client.Dial(ctx, d.routerList(), client.WithToken(d.token), client.WithTimeout(5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("plaintext client: %v, want a refusal saying the port requires TLS", err)
	}
	t.Logf("plaintext client: %v", err)

	// (b) a certificate from another CA
	other := t.TempDir()
	if err := certs.NewCA(other, "another CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := certs.Issue(other, other, "user-mallory", nil, certs.Client, time.Hour); err != nil {
		t.Fatal(err)
	}
	foreign, err := certs.ClientTLS(ca, filepath.Join(other, "user-mallory.crt"), filepath.Join(other, "user-mallory.key"))
	if err != nil {
		t.Fatal(err)
	}
	// A Go client offers its certificate only to a server that asks for
	// its CA; present it whatever the server asks, as an attacker would.
	mallory := foreign.Certificates[0]
	foreign.Certificates = nil
	foreign.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mallory, nil }
	if c, err := client.Dial(ctx, d.routerList(), client.WithToken(d.token), client.WithTLS(foreign), client.WithTimeout(5*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client with another CA's certificate was served")
	} else if !strings.Contains(err.Error(), "tls") {
		t.Fatalf("client with another CA's certificate: %v, want a TLS refusal", err)
	} else {
		t.Logf("client with another CA's certificate: %v", err)
	}

	// (c) the deployment's CA, the operator's certificate and the token
	dir := filepath.Join(d.dir, up.CertsDir)
	good, err := certs.ClientTLS(ca, filepath.Join(dir, up.AdminCert+".crt"), filepath.Join(dir, up.AdminCert+".key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, d.routerList(), client.WithToken(d.token), client.WithTLS(good))
	if err != nil {
		t.Fatalf("client with the deployment's CA: %v", err)
	}
	defer c.Close()

	// (d) a capture of the peer plane while a distinctive file is written
	content := make([]byte, 64<<10)
	rand.Read(content)
	topo, err := up.LoadTopology(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, cl := range topo.Clusters {
		for _, n := range cl.Nodes {
			ports = append(ports, "port "+n.Peer[strings.LastIndex(n.Peer, ":")+1:])
		}
	}
	pcap := filepath.Join(t.TempDir(), "peer.pcap")
	stopCapture := startCapture(t, pcap, strings.Join(ports, " or "))
	if _, err := c.Put(ctx, "/tls/secret.bin", content, client.Parents()); err != nil {
		stopCapture()
		t.Fatalf("put over TLS: %v", err)
	}
	got, err := c.Get(ctx, "/tls/secret.bin")
	if err != nil || !bytes.Equal(got, content) {
		stopCapture()
		t.Fatalf("get over TLS: %d bytes, %v", len(got), err)
	}
	// The leader sends the file to both followers: wait until the capture
	// (written packet by packet) holds at least that much, then stop it.
	err = eventually.Within(30*time.Second, "the replication traffic captured", func() error {
		fi, err := os.Stat(pcap)
		if err != nil {
			return err
		}
		return eventually.True(fi.Size() >= 2*int64(len(content)), "%d bytes captured on %s", fi.Size(), strings.Join(ports, " or "))
	})
	stopCapture()
	if err != nil {
		t.Fatal(err)
	}
	capture, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+32 <= len(content); off += 32 {
		if bytes.Contains(capture, content[off:off+32]) {
			t.Fatalf("the capture of the peer ports holds the file's bytes %d-%d in clear", off, off+32)
		}
	}
	t.Logf("peer-port capture: %d bytes, none of the file's 64 KiB in clear", len(capture))
}

// startCapture runs tcpdump on loopback for filter, writing to file,
// installing it first if it is missing (the test is skipped, saying why,
// if that fails). It returns once tcpdump listens; the returned function
// stops it and waits for the file to be written.
func startCapture(t *testing.T, file, filter string) func() {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Log("tcpdump is missing; installing it")
		ictx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ictx, "apt-get", "update").CombinedOutput(); err != nil {
			t.Skipf("tcpdump is missing and apt-get update failed: %v\n%s", err, out)
		}
		cmd := exec.CommandContext(ictx, "apt-get", "install", "-y", "tcpdump")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("tcpdump is missing and could not be installed: %v\n%s", err, out)
		}
	}
	stderr := &syncbuf.Buffer{}
	cmd := exec.Command("tcpdump", "-i", "lo", "-U", "-s", "0", "-w", file, filter)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("tcpdump does not start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "listening on"); {
		select {
		case err := <-done:
			once.Do(func() {})
			t.Skipf("tcpdump cannot capture here: %v: %s", err, stderr.String())
		case <-time.After(50 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start listening within 20s: %s", stderr.String())
		}
	}
	return stop
}
