package loadgen

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

//go:embed report.js
var reportScript string

var reportTmpl = template.Must(template.New("report").Parse(reportTemplate))

// WriteReport writes one self-contained HTML page showing results: for
// each, a summary table, throughput over time, latency over time and the
// latency percentile distribution per operation. The page fetches nothing:
// the data is inlined as JSON and an inline script draws the charts as SVG.
//
// Element ids the page guarantees once its script ran (tests and scripts
// rely on them), for the i-th result from 0:
//
//	chart-throughput-i  svg: ops/s per second, path throughput-line-i
//	chart-latency-time-i svg: p50 and p99 per second, paths latency-time-i-p50 and -p99
//	chart-latency-i      svg: latency by percentile, a path latency-line-i-OP per operation
//	summary-i            table: the figures of the run
//	cpu-i                table: server CPU per process (runs that measured it)
//	versus               table: the side-by-side figures of SideBySide (when
//	                     some workload ran against more than one system; no
//	                     script needed)
//
// and the body gets data-rendered="true" when every chart is drawn.
func WriteReport(w io.Writer, title string, results ...*Result) error {
	if len(results) == 0 {
		return fmt.Errorf("report: no results")
	}
	data, err := json.Marshal(results) // escapes <, > and &, so safe in <script>
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if title == "" {
		title = "cleave-loadgen: " + results[0].Title()
		if len(results) > 1 {
			title = fmt.Sprintf("cleave-loadgen: %d runs", len(results))
		}
	}
	return reportTmpl.Execute(w, map[string]any{
		"Versus":    versusRows(results),
		"Title":     title,
		"Generated": time.Now().UTC().Format(time.RFC3339),
		"Data":      string(data),
		// The script is inlined verbatim; it contains no "</script".
		"Script": strings.ReplaceAll(reportScript, "</", "<\\/"),
	})
}

// versusRow is one row of the side-by-side table: a workload's title row
// (Head), a system's figures, or a ratio of two systems' (Ratio).
type versusRow struct {
	Head  bool
	Ratio bool
	Cells []string
}

// versusRows renders SideBySide(rs) as table rows.
func versusRows(rs []*Result) []versusRow {
	var out []versusRow
	for _, v := range SideBySide(rs) {
		out = append(out, versusRow{Head: true, Cells: []string{v.Title, "ops/s", "p50 ms", "p99 ms", "CPU µs/op", "errors"}})
		for _, f := range v.Runs {
			out = append(out, versusRow{Cells: []string{f.Name, fmtFig(f.OpsPerSec, 0), fmtFig(f.P50, 3), fmtFig(f.P99, 3), fmtFig(f.CPUPerOp, 0), fmtFig(f.Errors, 0)}})
		}
		for _, f := range v.Ratios {
			out = append(out, versusRow{Ratio: true, Cells: []string{f.Name, fmtRatio(f.OpsPerSec), fmtRatio(f.P50), fmtRatio(f.P99), fmtRatio(f.CPUPerOp), ""}})
		}
	}
	return out
}
