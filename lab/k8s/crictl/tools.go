//go:build tools

// Package crictl records the crictl command this module builds, so `go mod tidy` keeps it.
package crictl

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
