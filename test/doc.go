// Package test holds edgeota's end-to-end tests: they build the edgeota
// binary and drive it as a user would, with real processes, files and
// signals.
package test
