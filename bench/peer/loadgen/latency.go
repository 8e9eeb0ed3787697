package main

import (
	"slices"
	"sync"
	"time"
)

// latencies collects request durations from many goroutines.
type latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	errors  int
}

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	if err != nil {
		l.errors++
	}
	l.mu.Unlock()
}

// summary is what one measured window saw.
type summary struct {
	count  int
	errors int
	p50    time.Duration
	p99    time.Duration
	max    time.Duration
}

// take returns the window's summary and starts a new window.
func (l *latencies) take() summary {
	l.mu.Lock()
	samples, errors := l.samples, l.errors
	l.samples, l.errors = nil, 0
	l.mu.Unlock()
	s := summary{count: len(samples), errors: errors}
	if len(samples) == 0 {
		return s
	}
	slices.Sort(samples)
	at := func(q float64) time.Duration { return samples[int(q*float64(len(samples)-1))] }
	s.p50, s.p99, s.max = at(0.50), at(0.99), samples[len(samples)-1]
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
