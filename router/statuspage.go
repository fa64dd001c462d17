package router

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

// statusPage is the status page's HTML, CSS and script, served as they
// are: no build step, nothing fetched from the network.
//
//go:embed statuspage
var statusPage embed.FS

// statusJSON is the path the page polls for the deployment's status.
const statusJSON = "/status.json"

// pageHandlers returns the side port's status page ("/" and its files) and
// statusJSON, which answers the same document as `cleave status -o json`
// (this router's STATUS answer, wire.Status), each request asking the nodes
// afresh within StatusTimeout.
func (r *Router) pageHandlers() map[string]http.Handler {
	files, err := fs.Sub(statusPage, "statuspage")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	return map[string]http.Handler{
		"/": http.FileServerFS(files),
		statusJSON: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ctx, cancel := context.WithTimeout(req.Context(), 2*r.cfg.StatusTimeout)
			defer cancel()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			enc.Encode(r.status(ctx))
		}),
	}
}
