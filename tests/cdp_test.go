package tests

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// browser is a headless Chromium driven over the DevTools protocol: one
// page, one websocket, one command at a time.
type browser struct {
	ws   *websocket.Conn
	next int
}

// findChromium returns a Chromium binary, installing Debian's package with
// scripts/install-chromium.sh if there is none; it skips t, saying why,
// only if chromium cannot be installed on this machine.
func findChromium(t *testing.T) string {
	t.Helper()
	look := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := look(); p != "" {
		return p
	}
	t.Log("no chromium on PATH; running scripts/install-chromium.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "sh", filepath.Join("..", "scripts", "install-chromium.sh")).CombinedOutput(); err != nil {
		t.Skipf("skipped: chromium is not installed and cannot be here: %v\n%s", err, out)
	}
	if p := look(); p != "" {
		return p
	}
	t.Fatal("scripts/install-chromium.sh succeeded but no chromium is on PATH")
	return ""
}

// devtoolsLine is what Chromium prints on stderr once its DevTools
// endpoint listens.
var devtoolsLine = regexp.MustCompile(`DevTools listening on ws://([0-9.:]+)/`)

// openBrowser starts headless Chromium on url and attaches to its page.
// The browser is stopped when t ends.
func openBrowser(t *testing.T, url string) *browser {
	t.Helper()
	bin := findChromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--window-size=1400,1100", "--user-data-dir="+filepath.Join(t.TempDir(), "profile"), url)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var hostport string
	select {
	case hostport = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not announce its DevTools endpoint within 30s")
	}
	ws, err := pageSocket(t, hostport)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &browser{ws: ws}
}

// pageSocket connects to the DevTools websocket of the browser's page.
func pageSocket(t *testing.T, hostport string) (*websocket.Conn, error) {
	var targets []struct{ Type, URL, WebSocketDebuggerURL string }
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + hostport + "/json/list")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		for _, tg := range targets {
			if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
				return websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1/")
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no page target at %s within 20s (last error %v, targets %+v)", hostport, err, targets)
		}
		time.Sleep(100 * time.Millisecond) // polling the browser's target list, not synchronising the test
	}
}

// call sends one DevTools command and returns its result, skipping the
// events that arrive meanwhile. It gives up after 20 s.
func (b *browser) call(method string, params any, result any) error {
	b.next++
	id := b.next
	b.ws.SetDeadline(time.Now().Add(20 * time.Second))
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if msg.ID != id {
			continue // an event
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// (JSON-serialisable) value into out.
func (b *browser) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("evaluate %q: %s", expr, r.ExceptionDetails.Text)
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("evaluate %q: no value", expr)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// screenshot returns a PNG of the page as it is drawn now.
func (b *browser) screenshot() ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(strings.TrimSpace(r.Data))
}
