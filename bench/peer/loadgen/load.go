package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The kubelet renews its Lease every 10 s and patches node status every
// nodeStatusReportFrequency (5 min) when nothing changed: one status patch
// per 30 renewals.
const renewalsPerStatusPatch = 30

// heartbeats keeps every node's Lease as last written, as each kubelet
// keeps its own, and renews them round robin at a given rate.
type heartbeats struct {
	o       *options
	clients []*kubernetes.Clientset
	leases  []*coordinationv1.Lease
	busy    []atomic.Bool // A renewal of this lease is in flight.
	next    int           // Round-robin position; dispatcher only.

	renew     latencies
	patch     latencies
	conflicts atomic.Int64
}

// newHeartbeats lists the Leases once (a kubelet starts from its own).
func newHeartbeats(ctx context.Context, o *options) (*heartbeats, error) {
	clients, err := o.clientsets()
	if err != nil {
		return nil, err
	}
	h := &heartbeats{o: o, clients: clients}
	opts := metav1.ListOptions{Limit: 5000}
	for {
		list, err := clients[0].CoordinationV1().Leases(leaseNamespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			h.leases = append(h.leases, &list.Items[i])
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if len(h.leases) == 0 {
		return nil, fmt.Errorf("no leases in %s: run register first", leaseNamespace)
	}
	h.busy = make([]atomic.Bool, len(h.leases))
	return h, nil
}

// job is one renewal (lease index) or, with patch set, one status patch of
// that lease's node.
type job struct {
	index int
	patch bool
}

// window is what one stretch of load at a fixed rate achieved.
type window struct {
	rate     float64 // Renewals per second asked for.
	seconds  float64
	missed   int64 // Due but not sent: every worker was busy.
	renew    summary
	patch    summary
	achieved float64 // Renewals completed without error per second.
	cores    float64 // CPU the servers used meanwhile; -1 if not measured.
}

// run offers `rate` renewals per second (plus status patches) for d and
// reports what completed. At most o.workers requests are in flight; work
// that falls due while all are busy is counted as missed, not queued, so an
// overloaded server shows as a lower achieved rate.
func (h *heartbeats) run(ctx context.Context, rate float64, d time.Duration, cpu *cpuMeter) window {
	cpu.lap()
	jobs := make(chan job, h.o.workers)
	var wg sync.WaitGroup
	for w := 0; w < h.o.workers; w++ {
		wg.Add(1)
		go func(cs *kubernetes.Clientset) {
			defer wg.Done()
			for j := range jobs {
				if j.patch {
					h.patchStatus(ctx, cs, j.index)
				} else {
					h.renewLease(ctx, cs, j.index)
				}
			}
		}(h.clients[w%len(h.clients)])
	}

	var missed int64
	var issued, patches int64
	start := time.Now()
	ticker := time.NewTicker(5 * time.Millisecond)
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		if elapsed >= d {
			break
		}
		due := int64(rate * elapsed.Seconds())
		for ; issued < due; issued++ {
			i := h.pick()
			if i < 0 {
				missed++
				continue
			}
			p := issued%renewalsPerStatusPatch == 0
			select {
			case jobs <- job{index: i}:
				if p {
					patches++
					select {
					case jobs <- job{index: i, patch: true}:
					default:
					}
				}
			default:
				h.busy[i].Store(false)
				missed++
			}
		}
		<-ticker.C
	}
	ticker.Stop()
	close(jobs)
	wg.Wait()

	w := window{rate: rate, seconds: time.Since(start).Seconds(), missed: missed}
	w.renew = h.renew.take()
	w.patch = h.patch.take()
	w.achieved = float64(w.renew.count-w.renew.errors) / w.seconds
	w.cores = cpu.lap()
	return w
}

// pick returns the next lease not being renewed, marked busy, or -1.
func (h *heartbeats) pick() int {
	for tries := 0; tries < len(h.leases); tries++ {
		i := h.next
		h.next = (h.next + 1) % len(h.leases)
		if h.busy[i].CompareAndSwap(false, true) {
			return i
		}
	}
	return -1
}

// renewLease writes the lease back with a new renewTime (an Update, as the
// kubelet's lease controller does); on a conflict it reads the lease and
// tries once more. The first attempt's latency is recorded.
func (h *heartbeats) renewLease(ctx context.Context, cs *kubernetes.Clientset, i int) {
	defer h.busy[i].Store(false)
	leases := cs.CoordinationV1().Leases(leaseNamespace)
	lease := h.leases[i].DeepCopy()
	now := metav1.NowMicro()
	lease.Spec.RenewTime = &now
	start := time.Now()
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if ctx.Err() != nil {
		return
	}
	h.renew.add(time.Since(start), err)
	if apierrors.IsConflict(err) {
		h.conflicts.Add(1)
		if fresh, getErr := leases.Get(ctx, lease.Name, metav1.GetOptions{}); getErr == nil {
			fresh.Spec.RenewTime = &now
			updated, err = leases.Update(ctx, fresh, metav1.UpdateOptions{})
		}
	}
	if err == nil {
		h.leases[i] = updated
	}
}

// patchStatus refreshes lastHeartbeatTime of every condition with the
// strategic merge patch a kubelet sends when nothing else changed.
func (h *heartbeats) patchStatus(ctx context.Context, cs *kubernetes.Clientset, i int) {
	now := metav1.Now().UTC().Format(time.RFC3339)
	kinds := []string{"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}
	var order, conditions []string
	for _, t := range kinds {
		order = append(order, fmt.Sprintf(`{"type":%q}`, t))
		conditions = append(conditions, fmt.Sprintf(`{"type":%q,"lastHeartbeatTime":%q}`, t, now))
	}
	body := fmt.Sprintf(`{"status":{"$setElementOrder/conditions":[%s],"conditions":[%s]}}`,
		strings.Join(order, ","), strings.Join(conditions, ","))
	start := time.Now()
	_, err := cs.CoreV1().Nodes().Patch(ctx, h.leases[i].Name, types.StrategicMergePatchType,
		[]byte(body), metav1.PatchOptions{}, "status")
	if ctx.Err() == nil {
		h.patch.add(time.Since(start), err)
	}
}

func (o *options) reportWindow(w window) {
	note("%.0f renewals/s asked: %.0f/s done, p50 %.1f ms, p99 %.1f ms, %d errors, %d missed; "+
		"%d status patches, p99 %.1f ms, %d errors; servers used %.2f cores",
		w.rate, w.achieved, ms(w.renew.p50), ms(w.renew.p99), w.renew.errors, w.missed,
		w.patch.count, ms(w.patch.p99), w.patch.errors, w.cores)
}

// passes says whether a window counts as sustained: nearly everything asked
// for done, p99 within bound, errors below one in a thousand.
func (w window) passes(maxP99 time.Duration) bool {
	return w.achieved >= 0.95*w.rate && w.renew.p99 <= maxP99 &&
		float64(w.renew.errors) <= 0.001*float64(w.renew.count)
}

// runLoad renews at one rate for a while, optionally timing GETs meanwhile.
func runLoad(ctx context.Context, args []string) error {
	var o options
	fs := o.flags("load")
	rate := fs.Float64("rate", 1000, "lease renewals per second (a kubelet's: nodes / 10)")
	seconds := fs.Float64("seconds", 30, "how long")
	getPath := fs.String("get-path", "", "also GET this path meanwhile, e.g. /api/v1/nodes/NAME")
	getRate := fs.Float64("get-rate", 20, "GETs per second")
	fs.Parse(args)

	h, err := newHeartbeats(ctx, &o)
	if err != nil {
		return err
	}
	cpu, err := newCPUMeter(o.serverPids)
	if err != nil {
		return err
	}
	d := time.Duration(*seconds * float64(time.Second))
	var p *prober
	probeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	if *getPath != "" {
		if p, err = o.newProber(*getPath, *getRate); err != nil {
			return err
		}
		go func() { p.run(probeCtx); close(done) }()
	}
	w := h.run(ctx, *rate, d, cpu)
	cancel()
	o.reportWindow(w)
	o.figure("heartbeat_offered_per_second", w.rate, "heartbeats/s")
	o.figure("heartbeat_done_per_second", w.achieved, "heartbeats/s")
	o.figure("heartbeat_p99_ms", ms(w.renew.p99), "ms")
	o.figure("heartbeat_errors", float64(w.renew.errors), "requests")
	o.figure("status_patch_p99_ms", ms(w.patch.p99), "ms")
	o.figure("server_cores_steady", w.cores, "cores")
	if p != nil {
		<-done
		o.reportProbe(p.lat.take())
	}
	return nil
}

// runRamp raises the renewal rate step by step until a step fails (see
// passes) and reports the highest rate sustained.
func runRamp(ctx context.Context, args []string) error {
	var o options
	fs := o.flags("ramp")
	ratesFlag := fs.String("rates", "250,500,1000,2000,4000,8000,16000", "renewal rates to try, ascending")
	stepSeconds := fs.Float64("step-seconds", 10, "seconds per step")
	maxP99 := fs.Duration("max-p99", time.Second, "a step whose renewal p99 exceeds this fails")
	fs.Parse(args)
	cpu, err := newCPUMeter(o.serverPids)
	if err != nil {
		return err
	}

	var rates []float64
	for _, field := range strings.Split(*ratesFlag, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("bad rate %q", field)
		}
		rates = append(rates, r)
	}
	h, err := newHeartbeats(ctx, &o)
	if err != nil {
		return err
	}
	var best *window
	limited := 1.0 // Every step held: the ramp, not the server, ended it.
	for _, r := range rates {
		w := h.run(ctx, r, time.Duration(*stepSeconds*float64(time.Second)), cpu)
		o.reportWindow(w)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !w.passes(*maxP99) {
			note("step %.0f/s fails (needs >= 95%% done, p99 <= %v, errors <= 0.1%%)", r, *maxP99)
			limited = 0
			break
		}
		best = &w
	}
	if best == nil {
		note("not even the first step held")
		o.figure("heartbeats_per_second", 0, "heartbeats/s")
		return nil
	}
	o.figure("heartbeats_per_second", best.achieved, "heartbeats/s")
	o.figure("heartbeat_p99_ms_at_sustained", ms(best.renew.p99), "ms")
	o.figure("server_cores_at_sustained", best.cores, "cores")
	o.figure("heartbeat_conflicts", float64(h.conflicts.Load()), "requests")
	o.figure("heartbeat_limited_by_load", limited, "bool")
	return nil
}
