// Command kole-peer-load plays N kubelets against kube-apiserver for the
// peer benchmark (bench/peer/run.sh): it registers the nodes kole-edge-sim
// would register (read from `kole-edge-sim --print-registrations`), keeps one
// Lease per node renewed, patches node status as kubelets do, and times GETs.
//
//	kole-peer-load register --kubeconfig K --fleet FILE
//	kole-peer-load load     --kubeconfig K --rate R --seconds S [--get-path P]
//	kole-peer-load ramp     --kubeconfig K --rates "500,1000,..." --step-seconds S
//	kole-peer-load get      --kubeconfig K --get-path P --seconds S
//
// Every measured figure is printed as `figure NAME VALUE UNIT` (DESIGN §7),
// NAME being --figure-prefix, the figure's own name and --figure-suffix.
// Client-side rate limits are off and requests spread over --clients
// connections, so that the server, not this program, is the bottleneck.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// options are the flags every subcommand shares.
type options struct {
	kubeconfig   string
	clients      int
	workers      int
	figurePrefix string
	figureSuffix string
	protobuf     bool
	serverPids   string
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster under test")
	fs.IntVar(&o.clients, "clients", 32, "separate connections (each its own transport)")
	fs.IntVar(&o.workers, "workers", 160, "requests in flight at most (kube-apiserver admits 200 mutating by default)")
	fs.StringVar(&o.figurePrefix, "figure-prefix", "peer.upstream.", "prefix of every figure name")
	fs.StringVar(&o.figureSuffix, "figure-suffix", "", "suffix of every figure name, e.g. _10000")
	fs.BoolVar(&o.protobuf, "protobuf", true, "speak protobuf to the core APIs, as kubelets do")
	fs.StringVar(&o.serverPids, "server-pids", "", "comma-separated pids of the servers under test, whose CPU use load and ramp report")
}

// flags returns a subcommand's flag set with the shared flags registered.
func (o *options) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	o.register(fs)
	return fs
}

// figure prints one figure line; fmt's %g keeps six significant digits as
// the C++ benchmarks' %.6g does.
func (o *options) figure(name string, value float64, unit string) {
	fmt.Printf("figure %s%s%s %.6g %s\n", o.figurePrefix, name, o.figureSuffix, value, unit)
}

func note(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kole-peer-load: "+format+"\n", args...)
}

// restConfig loads the kubeconfig with client-side throttling switched off.
func (o *options) restConfig() (*rest.Config, error) {
	config, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, err
	}
	config.QPS = -1 // No client-side rate limiter.
	config.Burst = 0
	config.Timeout = 60 * time.Second
	config.UserAgent = "kole-peer-load"
	return config, nil
}

// clientsets returns o.clients clientsets with a transport each. client-go
// shares one transport between equal configs; a dial function of its own
// makes each config distinct, so each gets its own connection.
func (o *options) clientsets() ([]*kubernetes.Clientset, error) {
	base, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	if o.protobuf {
		base.ContentType = "application/vnd.kubernetes.protobuf"
		base.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	out := make([]*kubernetes.Clientset, 0, o.clients)
	for i := 0; i < o.clients; i++ {
		config := rest.CopyConfig(base)
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		config.Dial = dialer.DialContext
		cs, err := kubernetes.NewForConfig(config)
		if err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	return out, nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kole-peer-load register|load|ramp|get [flags] (-h for each)")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "register":
		err = runRegister(ctx, os.Args[2:])
	case "load":
		err = runLoad(ctx, os.Args[2:])
	case "ramp":
		err = runRamp(ctx, os.Args[2:])
	case "get":
		err = runGet(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		note("%s: %v", os.Args[1], err)
		os.Exit(1)
	}
}
