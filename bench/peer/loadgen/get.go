package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// prober GETs one path at a fixed rate on a connection of its own, in JSON
// as kubectl asks, and records each latency.
type prober struct {
	client *rest.RESTClient
	path   string
	every  time.Duration
	lat    latencies
}

func (o *options) newProber(path string, rate float64) (*prober, error) {
	config, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	config.AcceptContentTypes = "application/json"
	config.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	client, err := rest.UnversionedRESTClientFor(config)
	if err != nil {
		return nil, err
	}
	return &prober{client: client, path: path, every: time.Duration(float64(time.Second) / rate)}, nil
}

// run probes until ctx ends; a probe that takes longer than the period
// delays the next one (closed loop), as a user's repeated `kubectl get` does.
func (p *prober) run(ctx context.Context) {
	ticker := time.NewTicker(p.every)
	defer ticker.Stop()
	for {
		start := time.Now()
		_, err := p.client.Get().AbsPath(p.path).DoRaw(ctx)
		if ctx.Err() != nil {
			return
		}
		p.lat.add(time.Since(start), err)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (o *options) reportProbe(s summary) {
	o.figure("get_p50_ms", ms(s.p50), "ms")
	o.figure("get_p99_ms", ms(s.p99), "ms")
	o.figure("get_max_ms", ms(s.max), "ms")
	o.figure("get_errors", float64(s.errors), "requests")
	note("GET: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d errors",
		s.count, ms(s.p50), ms(s.p99), ms(s.max), s.errors)
}

// runGet probes alone, for a server whose load comes from elsewhere (KOLE,
// whose heartbeats arrive through MQTT).
func runGet(ctx context.Context, args []string) error {
	var o options
	fs := o.flags("get")
	path := fs.String("get-path", "", "path to GET, e.g. /api/v1/nodes/NAME")
	rate := fs.Float64("get-rate", 20, "GETs per second")
	seconds := fs.Float64("seconds", 20, "how long to probe")
	fs.Parse(args)
	if *path == "" {
		return fmt.Errorf("--get-path is required")
	}
	p, err := o.newProber(*path, *rate)
	if err != nil {
		return err
	}
	probeCtx, cancel := context.WithTimeout(ctx, time.Duration(*seconds*float64(time.Second)))
	defer cancel()
	p.run(probeCtx)
	s := p.lat.take()
	if s.count == 0 {
		return fmt.Errorf("no GET completed")
	}
	o.reportProbe(s)
	return nil
}
