// Command podserver is the small server the kubeenv tests run as pods: an
// HTTP server (--http) that says its name, calls another pod by name and
// keeps a value in a file of its data directory (--data), and a TCP
// server (--tcp) that greets and hangs up, for TCP readiness probes; with
// --probe ADDR it only checks that ADDR (in its own network namespace)
// greets, and exits 0 if so, for exec readiness probes.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	httpAddr := flag.String("http", "", "HTTP listen address")
	tcpAddr := flag.String("tcp", "", "TCP listen address")
	data := flag.String("data", "", "data directory")
	probe := flag.String("probe", "", "check that this TCP address greets, and exit")
	flag.Parse()
	if *probe != "" {
		c, err := net.DialTimeout("tcp", *probe, time.Second)
		if err != nil {
			log.Fatal(err)
		}
		b := make([]byte, 3)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "hi\n" {
			log.Fatalf("podserver: %s greeted %q, %v", *probe, b, err)
		}
		return
	}
	if *httpAddr == "" && *tcpAddr == "" {
		log.Fatal("podserver: give --http or --tcp")
	}
	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			log.Fatal(err)
		}
		go greet(ln)
	}
	if *httpAddr == "" {
		select {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/name", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getenv("HOSTNAME")) })
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, _ *http.Request) {
		h, err := os.Hostname()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, h)
	})
	mux.HandleFunc("/whoami", whoami)
	mux.HandleFunc("/call", call)
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(filepath.Join(*data, "value"), []byte(r.URL.Query().Get("v")), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, _ *http.Request) {
		b, err := os.ReadFile(filepath.Join(*data, "value"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	log.Fatal(http.ListenAndServe(*httpAddr, mux))
}

// call asks the pod at ?addr= (a host:port, by name) for its name.
func call(w http.ResponseWriter, r *http.Request) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + r.URL.Query().Get("addr") + "/name")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	io.Copy(w, resp.Body)
}

// saDir is where a pod finds its service account's credentials, as
// rest.InClusterConfig reads them.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// whoami asks the API server, with the pod's in-cluster credentials (the
// token and CA under saDir, the address in KUBERNETES_SERVICE_HOST and
// _PORT), who it is, and answers the user name and the namespace file.
func whoami(w http.ResponseWriter, _ *http.Request) {
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ns, err := os.ReadFile(filepath.Join(saDir, "namespace"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		http.Error(w, "ca.crt holds no certificate", http.StatusInternalServerError)
		return
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")) +
		"/apis/authentication.k8s.io/v1/selfsubjectreviews"
	req, _ := http.NewRequest(http.MethodPost, url,
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || resp.StatusCode != http.StatusCreated {
		http.Error(w, fmt.Sprintf("self review: %s %v", resp.Status, err), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(w, "%s %s", review.Status.UserInfo.Username, ns)
}

func greet(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("hi\n"))
		c.Close()
	}
}
