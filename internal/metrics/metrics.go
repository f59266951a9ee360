// Package metrics defines Errand's Prometheus metrics in one registry:
// HTTP requests, job outcomes and durations per task type, and asynq queue
// sizes. Labels are bounded (route patterns, task types, queue names):
// never an ID, a tenant or anything a person typed.
package metrics

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the registry and the instruments roles update.
type Metrics struct {
	Registry     *prometheus.Registry
	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
	JobOutcomes  *prometheus.CounterVec
	JobDuration  *prometheus.HistogramVec
	Dispatched   *prometheus.CounterVec
}

// New builds a registry with process and Go runtime collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errand_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "errand_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		JobOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errand_job_outcomes_total",
			Help: "Task runs by type and outcome (succeeded, retry, failed, revoked, gave_up).",
		}, []string{"type", "outcome"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "errand_job_duration_seconds",
			Help:    "Task run time by type.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"type"}),
		Dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errand_dispatch_total",
			Help: "Dispatcher actions: enqueued (due-scan), checked (overdue task looked up), rekicked (lost or stuck task), forgotten (redis lost), failed.",
		}, []string{"kind", "action"}),
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.JobOutcomes, m.JobDuration, m.Dispatched)
	return m
}

// WatchQueues adds asynq's queue sizes, read through inspector at scrape time.
func (m *Metrics) WatchQueues(inspector *asynq.Inspector) {
	m.Registry.MustRegister(&queueCollector{inspector: inspector})
}

var (
	queueSizeDesc = prometheus.NewDesc("errand_queue_tasks",
		"Tasks in each asynq queue by state.", []string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("errand_queue_latency_seconds",
		"Age of the oldest pending task in each queue.", []string{"queue"}, nil)
	queueUpDesc = prometheus.NewDesc("errand_queue_scrape_ok",
		"1 when asynq's queues could be read from Redis.", nil, nil)
)

type queueCollector struct{ inspector *asynq.Inspector }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueSizeDesc
	ch <- queueLatencyDesc
	ch <- queueUpDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.inspector.Queues()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ok := 1.0
	for _, q := range queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			ok = 0
			continue
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, ok)
}

// WatchPrivacyOverdue adds errand_privacy_requests_overdue{type}: open
// privacy requests past their due time, counted by count at scrape time
// (from PostgreSQL, so whichever process serves /metrics tells the truth).
func (m *Metrics) WatchPrivacyOverdue(count func(ctx context.Context) (map[string]int64, error)) {
	m.Registry.MustRegister(&privacyCollector{count: count})
}

var (
	privacyOverdueDesc = prometheus.NewDesc("errand_privacy_requests_overdue",
		"Open privacy requests past their due time, by type (access, deletion, correction).", []string{"type"}, nil)
	privacyUpDesc = prometheus.NewDesc("errand_privacy_requests_scrape_ok",
		"1 when privacy requests could be counted in PostgreSQL.", nil, nil)
)

type privacyCollector struct {
	count func(ctx context.Context) (map[string]int64, error)
}

func (c *privacyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- privacyOverdueDesc
	ch <- privacyUpDesc
}

func (c *privacyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(privacyUpDesc, prometheus.GaugeValue, 0)
		return
	}
	for typ, n := range counts {
		ch <- prometheus.MustNewConstMetric(privacyOverdueDesc, prometheus.GaugeValue, float64(n), typ)
	}
	ch <- prometheus.MustNewConstMetric(privacyUpDesc, prometheus.GaugeValue, 1)
}
