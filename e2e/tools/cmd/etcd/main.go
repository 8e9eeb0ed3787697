// Command etcd is the etcd server at the release k8s.io/kubernetes pins,
// built from etcd's server module so that the e2e harness needs no download
// site.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
