package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// registration is one line of `kole-edge-sim --print-registrations`: the
// payload a node connection publishes on its register topic
// (docs/protocol.md). Its fields already carry core/v1 names.
type registration struct {
	Node        string                 `json:"node"`
	Labels      map[string]string      `json:"labels"`
	Capacity    corev1.ResourceList    `json:"capacity"`
	Allocatable corev1.ResourceList    `json:"allocatable"`
	Addresses   []corev1.NodeAddress   `json:"addresses"`
	NodeInfo    corev1.NodeSystemInfo  `json:"nodeInfo"`
	Conditions  []corev1.NodeCondition `json:"conditions"`
}

const (
	leaseNamespace = corev1.NamespaceNodeLease
	// The kubelet's defaults: a lease of 40 s renewed every 10 s.
	leaseDurationSeconds = 40
	// What KOLE's Ready condition says of a node whose heartbeats arrive
	// (storage/node_store.cc), so that both sides show the same text.
	readyReason  = "EdgeAgentReady"
	readyMessage = "edge agent is posting heartbeats"
)

// readFleet decodes the registrations, one JSON object a line.
func readFleet(path string) ([]registration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var fleet []registration
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var r registration
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, len(fleet)+1, err)
		}
		fleet = append(fleet, r)
	}
	return fleet, scanner.Err()
}

// nodeOf is the Node a kubelet would create for the registration: the same
// metadata and status, the device's conditions plus Ready, all stamped now.
func nodeOf(r *registration, now metav1.Time) *corev1.Node {
	conditions := make([]corev1.NodeCondition, 0, len(r.Conditions)+1)
	for _, c := range r.Conditions {
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		conditions = append(conditions, c)
	}
	conditions = append(conditions, corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: readyReason,
		Message: readyMessage, LastHeartbeatTime: now, LastTransitionTime: now,
	})
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: r.Node, Labels: r.Labels},
		Status: corev1.NodeStatus{
			Capacity:    r.Capacity,
			Allocatable: r.Allocatable,
			Conditions:  conditions,
			Addresses:   r.Addresses,
			NodeInfo:    r.NodeInfo,
		},
	}
}

// leaseOf is the Lease a kubelet keeps for its node, owned by the Node.
func leaseOf(node *corev1.Node, now metav1.MicroTime) *coordinationv1.Lease {
	holder := node.Name
	duration := int32(leaseDurationSeconds)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: node.Name, Namespace: leaseNamespace,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &now,
		},
	}
}

// parallel runs fn(i) for i in [0, n) on `workers` goroutines, worker w
// using clients[w % len(clients)], and returns how many calls failed and the
// first error.
func parallel(ctx context.Context, n, workers int, clients []*kubernetes.Clientset,
	fn func(cs *kubernetes.Clientset, i int) error) (int64, error) {
	var next, failed atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(cs *kubernetes.Clientset) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(cs, i); err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
			}
		}(clients[w%len(clients)])
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return failed.Load(), first
}

// runRegister creates every node of the fleet (the registration rate), then
// every node's Lease (a kubelet creates it right after registering).
func runRegister(ctx context.Context, args []string) error {
	var o options
	fs := o.flags("register")
	fleetPath := fs.String("fleet", "", "output of kole-edge-sim --print-registrations")
	fs.Parse(args)

	fleet, err := readFleet(*fleetPath)
	if err != nil {
		return err
	}
	clients, err := o.clientsets()
	if err != nil {
		return err
	}
	n := len(fleet)
	nodes := make([]*corev1.Node, n)

	start := time.Now()
	failed, err := parallel(ctx, n, o.workers, clients, func(cs *kubernetes.Clientset, i int) error {
		created, err := cs.CoreV1().Nodes().Create(ctx, nodeOf(&fleet[i], metav1.Now()),
			metav1.CreateOptions{})
		nodes[i] = created
		return err
	})
	seconds := time.Since(start).Seconds()
	if failed > 0 {
		return fmt.Errorf("%d of %d node creates failed, first: %v", failed, n, err)
	}
	note("created %d nodes in %.1f s", n, seconds)
	o.figure("register_seconds", seconds, "s")
	o.figure("register_per_second", float64(n)/seconds, "nodes/s")

	start = time.Now()
	failed, err = parallel(ctx, n, o.workers, clients, func(cs *kubernetes.Clientset, i int) error {
		_, err := cs.CoordinationV1().Leases(leaseNamespace).Create(ctx,
			leaseOf(nodes[i], metav1.NowMicro()), metav1.CreateOptions{})
		return err
	})
	seconds = time.Since(start).Seconds()
	if failed > 0 {
		return fmt.Errorf("%d of %d lease creates failed, first: %v", failed, n, err)
	}
	note("created %d leases in %.1f s", n, seconds)
	o.figure("lease_create_per_second", float64(n)/seconds, "leases/s")
	return nil
}
