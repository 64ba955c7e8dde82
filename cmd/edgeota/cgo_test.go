//go:build cgo

package main

// cgoEnabled: this test binary can load PKCS#11 modules.
const cgoEnabled = true
