//go:build !cgo

package main

// cgoEnabled: this test binary cannot load PKCS#11 modules.
const cgoEnabled = false
