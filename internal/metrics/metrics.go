// Package metrics is the node's Prometheus instrumentation: one registry
// per node (never the global default one), the collectors on it, and the
// small recording methods the server, the runtime, the committer, the
// job scheduler and the store call. docs/metrics.md lists every metric.
//
// Per-task series describe the tasks this node owns, read from the store
// at scrape time (Sampler), so a task that was deleted or moved to
// another node drops out of this node's answer at once; the counters kept
// by the node for a task (records applied, restarts, pullbacks) are shown
// only beside it and forgotten when it goes.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/connector-manager/cm/model"
)

// TaskSample is one task of this node as the store holds it at scrape time.
type TaskSample struct {
	Task, Component string
	State           model.State
	// Lag is the task's delay in seconds (the view's delay, 0 for a task
	// idle at its source's head); CheckpointAge the seconds since its
	// checkpoint was last written. Nil when it has no checkpoint yet.
	Lag, CheckpointAge *float64
}

// Sampler lists the tasks of this node for a scrape.
type Sampler func(ctx context.Context) ([]TaskSample, error)

// Metrics is the instrumentation of one node.
type Metrics struct {
	reg  *prometheus.Registry
	node string

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	transitions  *prometheus.CounterVec
	flushSeconds prometheus.Histogram
	flushBatch   prometheus.Histogram
	flushErrors  prometheus.Counter
	jobRuns      *prometheus.CounterVec
	jobFailures  *prometheus.CounterVec
	jobSeconds   *prometheus.HistogramVec
	querySeconds *prometheus.HistogramVec

	tasks *taskCollector
}

// New builds the metrics of node on a registry of its own, with the Go
// runtime and process collectors. leading reports whether this node holds
// the leader lease; sample lists its tasks at scrape time.
func New(node model.NodeID, leading func() bool, sample Sampler) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), node: string(node)}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cm_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cm_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern and method.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method"})
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cm_task_transitions_total", Help: "Task state transitions this node wrote, by state before and after.",
	}, []string{"from", "to"})
	m.flushSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cm_committer_flush_duration_seconds", Help: "Time of one committer flush that wrote reports.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.flushBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cm_committer_flush_batch_size", Help: "Task reports (positions and heartbeats) written by one committer flush.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
	})
	m.flushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cm_committer_flush_errors_total", Help: "Committer flushes that failed to write some report.",
	})
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cm_job_runs_total", Help: "Runs of a cluster-wide job on this node (as leader).",
	}, []string{"job"})
	m.jobFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cm_job_failures_total", Help: "Runs of a cluster-wide job that ended in an error.",
	}, []string{"job"})
	m.jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cm_job_duration_seconds", Help: "Time of one run of a cluster-wide job.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300},
	}, []string{"job"})
	m.querySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cm_store_query_duration_seconds", Help: "Time of one store statement, by gorm operation and table.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"op", "table"})
	nodeLabel := prometheus.Labels{"node": m.node}
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cm_node_up", Help: "1 while this node serves.", ConstLabels: nodeLabel,
	})
	up.Set(1)
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cm_lease_holder", Help: "1 when this node holds the leader lease (runs the cluster-wide jobs), else 0.", ConstLabels: nodeLabel,
	}, func() float64 {
		if leading != nil && leading() {
			return 1
		}
		return 0
	})
	m.tasks = newTaskCollector(m.node, sample)
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.transitions, m.flushSeconds, m.flushBatch, m.flushErrors,
		m.jobRuns, m.jobFailures, m.jobSeconds, m.querySeconds, up, leader, m.tasks,
	)
	return m
}

// Registry is the node's registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// unmatched is the route label of a request no route matched, so that
// probes of random paths cannot grow the series without bound.
const unmatched = "unmatched"

// HTTPRequest records one answered request; route is the pattern Echo
// matched ("" when none did).
func (m *Metrics) HTTPRequest(route, method string, status int, took time.Duration) {
	if route == "" {
		route = unmatched
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(took.Seconds())
}

// Query implements model.Observer.
func (m *Metrics) Query(op, table string, took time.Duration) {
	m.querySeconds.WithLabelValues(op, table).Observe(took.Seconds())
}

// Transition implements model.Observer.
func (m *Metrics) Transition(from, to model.State) {
	m.transitions.WithLabelValues(string(from), string(to)).Inc()
}

// Flushed records one committer flush of reports reports.
func (m *Metrics) Flushed(reports int, took time.Duration, err error) {
	m.flushSeconds.Observe(took.Seconds())
	m.flushBatch.Observe(float64(reports))
	if err != nil {
		m.flushErrors.Inc()
	}
}

// JobRan records one run of job.
func (m *Metrics) JobRan(job string, took time.Duration, err error) {
	failures := m.jobFailures.WithLabelValues(job) // shown at 0 once the job ran
	if err != nil {
		failures.Inc()
	}
	m.jobSeconds.WithLabelValues(job).Observe(took.Seconds())
	// Counted last: a scrape that sees the run sees its duration and its
	// failure count too.
	m.jobRuns.WithLabelValues(job).Inc()
}

// RecordsApplied counts records a task's sink wrote.
func (m *Metrics) RecordsApplied(component string, n int) {
	m.tasks.add(component, func(c *taskCounters) { c.records += float64(n) })
}

// RunnerStarted counts a runner start; every start after the first this
// process made for the component is a restart.
func (m *Metrics) RunnerStarted(component string) {
	m.tasks.add(component, func(c *taskCounters) {
		if c.started {
			c.restarts++
		}
		c.started = true
	})
}

// Pullback counts a pullback that rewound the task's checkpoint.
func (m *Metrics) Pullback(component string) {
	m.tasks.add(component, func(c *taskCounters) { c.pullbacks++ })
}

// DDLApplied counts a schema statement a task's sink applied on its
// target (or met again and found applied).
func (m *Metrics) DDLApplied(component string) {
	m.tasks.add(component, func(c *taskCounters) { c.ddl++ })
}

// taskCounters are what the node counts for one task.
type taskCounters struct {
	records, restarts, pullbacks, ddl float64
	started                           bool
	touched                           time.Time
}

// taskCollector answers the per-task series and the tasks by state at
// scrape time.
type taskCollector struct {
	node   string
	sample Sampler

	mu       sync.Mutex
	counters map[string]*taskCounters

	byState, lag, age, records, restarts, pullbacks, ddl, scrapeErrors *prometheus.Desc
}

var taskLabels = []string{"task", "component", "node"}

func newTaskCollector(node string, sample Sampler) *taskCollector {
	return &taskCollector{
		node: node, sample: sample, counters: map[string]*taskCounters{},
		byState: prometheus.NewDesc("cm_tasks", "Tasks this node owns, by state.", []string{"state", "node"}, nil),
		lag: prometheus.NewDesc("cm_task_replication_lag_seconds",
			"How far the task is behind its source, in seconds (its delay; 0 when idle at the source's head).", taskLabels, nil),
		age: prometheus.NewDesc("cm_task_checkpoint_age_seconds",
			"Seconds since the task's checkpoint was last written.", taskLabels, nil),
		records: prometheus.NewDesc("cm_task_records_applied_total",
			"Records the task's sink wrote on this node since the process started.", taskLabels, nil),
		restarts: prometheus.NewDesc("cm_task_restarts_total",
			"Runner starts of the task on this node after its first one since the process started (resumes, automatic restarts).", taskLabels, nil),
		pullbacks: prometheus.NewDesc("cm_task_pullbacks_total",
			"Pullbacks that rewound the task's checkpoint on this node since the process started.", taskLabels, nil),
		ddl: prometheus.NewDesc("cm_task_ddl_applied_total",
			"Schema statements the task's sink applied on its target on this node since the process started.", taskLabels, nil),
		scrapeErrors: prometheus.NewDesc("cm_task_metrics_error",
			"1 when the tasks could not be read from the store for this scrape (the per-task series are then missing).", []string{"node"}, nil),
	}
}

func (c *taskCollector) add(component string, f func(*taskCounters)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.counters[component]
	if tc == nil {
		tc = &taskCounters{}
		c.counters[component] = tc
	}
	f(tc)
	tc.touched = time.Now()
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.byState, c.lag, c.age, c.records, c.restarts, c.pullbacks, c.ddl, c.scrapeErrors} {
		ch <- d
	}
}

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 5 * time.Second

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	tasks, err := c.sample(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErrors, prometheus.GaugeValue, failed, c.node)
	if err != nil {
		return
	}
	counts := make(map[model.State]int, len(model.States))
	for _, s := range model.States {
		if s != model.StateDeleted {
			counts[s] = 0
		}
	}
	seen := make(map[string]bool, len(tasks))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tasks {
		counts[t.State]++
		seen[t.Component] = true
		labels := []string{t.Task, t.Component, c.node}
		if t.Lag != nil {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, *t.Lag, labels...)
		}
		if t.CheckpointAge != nil {
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, *t.CheckpointAge, labels...)
		}
		tc := c.counters[t.Component]
		if tc == nil {
			tc = &taskCounters{}
		}
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, tc.records, labels...)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, tc.restarts, labels...)
		ch <- prometheus.MustNewConstMetric(c.pullbacks, prometheus.CounterValue, tc.pullbacks, labels...)
		ch <- prometheus.MustNewConstMetric(c.ddl, prometheus.CounterValue, tc.ddl, labels...)
	}
	// A task no longer here (deleted, or moved to another node) loses its
	// counters, unless it was counted while this scrape read the store.
	for comp, tc := range c.counters {
		if !seen[comp] && tc.touched.Before(started) {
			delete(c.counters, comp)
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(n), string(s), c.node)
	}
}
