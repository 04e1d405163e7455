package apptest

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// Metric is the value of the app's metric name in the series whose labels
// include labels (name, value pairs), summed over every such series; a
// histogram's value is its count. 0 when no series matches.
func (e *Env) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := e.App.Metrics.Registry().Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				sum += value(m)
			}
		}
	}
	return sum
}

// Series returns the label sets of every series of the app's metric name.
func (e *Env) Series(t testing.TB, name string) []map[string]string {
	t.Helper()
	families, err := e.App.Metrics.Registry().Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var out []map[string]string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			out = append(out, ls)
		}
	}
	return out
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
