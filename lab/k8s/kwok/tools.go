//go:build tools

// Package kwok records the kwok command this module builds, so `go mod tidy` keeps it.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
