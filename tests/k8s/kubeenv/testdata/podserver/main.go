// Command podserver is the small server the kubeenv tests run as pods: an
// HTTP server (--http) that says its name, calls another pod by name and
// keeps a value in a file of its data directory (--data), and a TCP
// server (--tcp) that greets and hangs up, for TCP readiness probes; with
// --probe ADDR it only checks that ADDR (in its own network namespace)
// greets, and exits 0 if so, for exec readiness probes.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
