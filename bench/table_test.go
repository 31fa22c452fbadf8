package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// verdict is one line of a benchmark's table: a scenario's figure for cm
// beside its baseline, their ratio, the target and whether it is met.
type verdict struct {
	Scenario, CM, Baseline, Ratio, Target string
	Met                                   bool
}

// verdicts collects every benchmark's lines; TestMain prints them all once
// the run ends, after each benchmark printed its own.
var verdicts struct {
	mu    sync.Mutex
	lines []verdict
}

// report logs lines as a table and keeps them for the summary.
func report(b testing.TB, lines ...verdict) {
	b.Helper()
	verdicts.mu.Lock()
	verdicts.lines = append(verdicts.lines, lines...)
	verdicts.mu.Unlock()
	var sb strings.Builder
	printTable(&sb, lines)
	logf(b, "\n%s", sb.String())
}

// printTable writes lines as an aligned table.
func printTable(w io.Writer, lines []verdict) {
	rows := [][]string{{"scenario", "cm", "baseline", "ratio", "target", "met?"}}
	for _, l := range lines {
		met := "no"
		if l.Met {
			met = "yes"
		}
		rows = append(rows, []string{l.Scenario, l.CM, l.Baseline, l.Ratio, l.Target, met})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for k, r := range rows {
		for i, c := range r {
			fmt.Fprintf(w, "| %s%s ", c, strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
		}
		fmt.Fprintln(w, "|")
		if k == 0 {
			for i := range r {
				fmt.Fprintf(w, "|%s", strings.Repeat("-", width[i]+2))
			}
			fmt.Fprintln(w, "|")
		}
	}
}

// printVerdicts writes every line reported in this run, if any.
func printVerdicts(w io.Writer) {
	verdicts.mu.Lock()
	defer verdicts.mu.Unlock()
	if len(verdicts.lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nevery scenario of this run:")
	printTable(w, verdicts.lines)
}

func ratio(cm, base float64) string {
	if base == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", cm/base)
}
